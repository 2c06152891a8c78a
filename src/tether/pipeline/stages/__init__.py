"""The pipeline's stages, one per module; their order lives in ``default_stages``."""
