"""``/vertex``: Claude on Google Vertex AI, through tether's one model-call pipeline."""
