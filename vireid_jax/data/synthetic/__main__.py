"""`python -m vireid_jax.data.synthetic ...`: see `vireid_jax.data.synthetic.cli`."""

import sys

from vireid_jax.data.synthetic.cli import main

sys.exit(main())
