"""``/bedrock``: Claude on Amazon Bedrock, through tether's one model-call pipeline."""
