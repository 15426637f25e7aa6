"""Attention in one place: the backend protocol and binding (:mod:`blt.attention.backend`) and the
mask descriptions every component hands to it (:mod:`blt.attention.masks`).

Backends are plugins (``blt/plugins/attention/``); a backend's private machinery lives in its own
plugin package (sdpa's block plans and sliding-window kernel in ``blt/plugins/attention/sdpa/``).
"""
