"""`python -m runner_sdk.aimodels validate|plan ...` (the same commands as `runner-sdk aimodels ...`)."""

import sys

from .cli import main

sys.exit(main())
