"""`python -m dualcap_sandbox`: the same as `dualcap-sandbox`."""

import sys

from dualcap_sandbox.cli import main

sys.exit(main())
