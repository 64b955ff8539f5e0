from runner_sdk.conformance import *  # noqa: F403  (moved into the SDK: runner_sdk/conformance.py)
