"""Sphinx configuration of the closekit site (`make docs`): MyST Markdown pages, MyST-NB executed notebooks."""
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))                   # the checkout's closekit, for autodoc

project = "closekit"
author = "closekit contributors"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
exclude_patterns = ["_build", ".gitignore", "README.md"]
html_theme = "furo"
html_title = "closekit"
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]        # ipywidgets' live state cannot render in static HTML

# notebooks: executed at build time (the tutorials on their smoke params), cached by their cells' content
nb_execution_mode = "cache"
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_in_temp = True                            # the runs/ they write go to a temporary directory
nb_execution_timeout = 1800
nb_execution_raise_on_error = True
nb_output_stderr = "remove"                            # training logs and library deprecation notes
nb_merge_streams = True

autodoc_member_order = "bysource"
autodoc_typehints = "description"
