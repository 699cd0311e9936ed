"""pricetune-example: a template for third-party pricetune plugins.

Installing this distribution registers, through the ``pricetune`` entry-point
group (see ``pyproject.toml``):

* backbone ``"example-mlp"``: :class:`.components.ExampleMLPBackbone`
* head ``"example-mean-pool"``: :class:`.components.ExampleMeanPoolHead`
* strategy ``"example-head-only"``: :class:`.components.ExampleHeadOnly`

Importing this package is cheap: the hooks in :mod:`pricetune_example.plugin`
import the components (and torch) only when pricetune asks for them.
"""

__version__ = "0.1.0"
