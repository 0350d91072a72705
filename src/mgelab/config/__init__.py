"""The Hydra side of mgelab: resolvers used by ``conf/`` and the multirun callback.

Importing this package registers the resolvers, so ``scripts/*.py`` and tests import it
before composing a config.
"""

from mgelab.config.resolvers import register_resolvers

register_resolvers()
