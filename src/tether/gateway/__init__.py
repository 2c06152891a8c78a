"""Front doors: each translates one protocol into an Action and the Decision back."""
