"""strop: self-hosted fine-tuning for open-weight language models."""

__version__ = "0.1.0"
