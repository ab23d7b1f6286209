"""Detector engines, active-learning selection, training and evaluation; no Django.

Importing the package (or ``contract``, ``phantoms``, ``registry``) does not import
torch, so the web process may use the typed contract freely.
"""
