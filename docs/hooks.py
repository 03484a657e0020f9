"""MkDocs hook: show the Sphinx roles of cartpk's docstrings (:func:`~cartpk.simulate`) as
code (``simulate``), as Sphinx would, instead of the raw role text."""

import re

_ROLE = re.compile(r":(?:func|class|data|mod|meth|attr|exc|obj):<code>(~?)([^<]*)</code>")


def on_page_content(html, **kwargs):
    return _ROLE.sub(lambda m: f"<code>{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}</code>", html)
