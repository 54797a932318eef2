"""The OpenAI-compatible HTTP service."""

from strop.server.app import create_app

__all__ = ["create_app"]
