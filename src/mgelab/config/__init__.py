"""The Hydra side of mgelab: resolvers and schemas used by ``conf/``, validation, callbacks.

Importing this package registers the resolvers and schemas, so ``scripts/*.py`` and tests import it
before composing a config.
"""

from mgelab.config.resolvers import register_resolvers
from mgelab.config.schema import register_schemas

register_resolvers()
register_schemas()
