"""Hydra configuration files shipped as package data (``pkg://ternlab.conf``)."""
