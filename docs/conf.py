"""Sphinx configuration: the guide, the results pages and the API reference.

The pages are Markdown (MyST); the reference is generated from the docstrings (autodoc +
napoleon, Google style).

Build: ``pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html``.
"""

project = "regionattack"
author = "The regionattack contributors"
copyright = "2026, The regionattack contributors"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "results/*/report.md"]  # reports written by the benchmarks

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

myst_heading_anchors = 4  # links such as guide.md#vulnerability-maps-where-can-it-be-broken
myst_enable_extensions = ["dollarmath"]

html_theme = "alabaster"
html_static_path: list[str] = []

#: The modules of the reference, in order; each documents the names of its ``__all__`` that
#: the package's top level does not already export.
REFERENCE_MODULES = (
    "regionattack",
    "regionattack.regions",
    "regionattack.latent",
    "regionattack.ranking",
    "regionattack.ablation",
    "regionattack.metrics",
    "regionattack.maps",
    "regionattack.normalization",
    "regionattack.probe",
    "regionattack.defenses",
    "regionattack.models",
    "regionattack.data",
    "regionattack.bench",
)


def reference_sections() -> str:
    """MyST sections with one autodoc directive per public name (from ``__all__``)."""
    import importlib
    import inspect

    top = importlib.import_module("regionattack")
    sections = []
    for name in REFERENCE_MODULES:
        module = importlib.import_module(name)
        names = [
            member
            for member in module.__all__
            if not inspect.ismodule(getattr(module, member))
            and (module is top or member not in top.__all__)
        ]
        directives = [f".. automodule:: {name}\n   :no-members:\n"]
        for member in names:
            value = getattr(module, member)
            if inspect.isclass(value):
                directives.append(f".. autoclass:: {name}.{member}\n   :members:\n")
            elif callable(value):
                directives.append(f".. autofunction:: {name}.{member}\n")
            else:  # a constant: its doc comment lives where it is defined
                doc = _attribute_doc(value, member)
                body = "\n".join(f"   {line}".rstrip() for line in doc)
                directives.append(f".. py:data:: {name}.{member}\n\n{body}\n")
        body = "\n".join(directives)
        sections.append(f"## `{name}`\n\n```{{eval-rst}}\n{body}```\n")
    return "\n".join(sections)


def _attribute_doc(value: object, member: str) -> list[str]:
    """The ``#:`` comment or string after ``member`` in the regionattack module defining it."""
    import sys

    from sphinx.pycode import ModuleAnalyzer

    for name, module in sorted(sys.modules.items()):
        if name.startswith("regionattack") and getattr(module, member, None) is value:
            docs = ModuleAnalyzer.for_module(name).find_attr_docs().get(("", member))
            if docs:
                from sphinx.ext.napoleon import Config
                from sphinx.ext.napoleon.docstring import GoogleDocstring

                return GoogleDocstring(list(docs), Config(napoleon_use_rtype=False)).lines()
    raise ValueError(f"{member} has no doc comment (#: ...) where it is defined")


def _fill_reference(app, docname: str, source: list[str]) -> None:
    if docname == "reference":
        source[0] += "\n" + reference_sections()


def setup(app):
    """Fill docs/reference.md from the modules' ``__all__`` when Sphinx reads it."""
    app.connect("source-read", _fill_reference)
