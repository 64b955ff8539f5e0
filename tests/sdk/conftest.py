import pytest

from runner_sdk import RunnerSettings

MODEL_ID = "ByteDance/SDXL-Lightning-4step"


@pytest.fixture
def settings(tmp_path):
    def make(**overrides) -> RunnerSettings:
        base = dict(pipeline="text-to-image", model_id=MODEL_ID, model_dir=tmp_path, device="cpu",
                    capacity=1, queue_size=2, version="0.14.1-lpsdk.0.1.0")
        base.update(overrides)
        return RunnerSettings(**base)

    return make
