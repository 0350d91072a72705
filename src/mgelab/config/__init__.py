"""The Hydra side of mgelab: resolvers and schemas used by ``conf/``, validation, callbacks.

Importing this package registers the resolvers and schemas, so ``scripts/*.py`` and tests import it
before composing a config. The schemas are derived from the constructors of the trainer, the
optimizer and the data modules and from the model builders, so this import loads MegEngine.
"""

import numpy

# MegEngine turns on flush-to-zero when it loads; numpy computing its float limits afterwards (scipy
# does, when MLflow imports it) then warns that the smallest subnormal is zero. Computed first, they
# are cached and the warning stays off every run's output.
numpy.finfo(numpy.float32), numpy.finfo(numpy.float64)

from mgelab.config.resolvers import register_resolvers  # noqa: E402
from mgelab.config.schema import register_schemas  # noqa: E402

register_resolvers()
register_schemas()
