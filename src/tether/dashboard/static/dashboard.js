// Destructive buttons ask first: any form with data-confirm. (No inline scripts: the
// Content-Security-Policy allows only files served from here.)
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
}, true);
