"""`model.yaml`: everything about how one model is served, as typed data.

It plays the part of Triton's `config.pbtxt`. Defaults are right for most
models; a bad file is refused at load with the file and the field named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from batchserve.errors import ConfigError

Auto = Literal["auto"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorConfig(_Strict):
    """One declared input or output; the runtime's own description wins where both exist."""

    name: str
    datatype: str = "FP32"
    shape: list[int] = Field(default_factory=list, description="-1 for a dynamic dimension")


class ImagePreprocessing(_Strict):
    """How an image becomes the model's input tensor."""

    input: str | None = Field(
        None, description="input tensor name; the model's first input if unset"
    )
    size: tuple[int, int] = (224, 224)
    resize: Literal["shorter_side_center_crop", "stretch"] = "shorter_side_center_crop"
    resize_ratio: float = Field(
        0.875, gt=0, le=1, description="crop fraction, as in ImageNet's 256 -> 224"
    )
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: Literal["RGB", "BGR"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    max_pixels: int = Field(40_000_000, gt=0, description="decompression-bomb bound")


class ClassificationConfig(_Strict):
    """How a classifier's output becomes `[{label, score}]` on the /predict route."""

    output: str | None = Field(None, description="output tensor; the model's first if unset")
    activation: Literal["softmax", "sigmoid", "none"] = Field(
        "softmax", description="applied to the raw output; 'none' if it is already scores"
    )


class PaddingConfig(_Strict):
    """Variable-length batching: requests whose inputs differ only in dynamic non-batch
    dimensions share a batch, padded to the longest in it.

    Requests are grouped by their lengths rounded up to `bucket`, so a batch never
    pads a short request to many times its length.
    """

    bucket: int = Field(16, ge=1, description="lengths round up to a multiple of this to group")
    value: float = Field(0, description="what pads every input (token id 0, attention mask 0)")
    values: dict[str, float] = Field(default_factory=dict, description="per-input pad value")
    unpad_outputs: list[str] = Field(
        default_factory=list,
        description="outputs whose axis 1 follows the padded length: cut back per request",
    )


class SchedulerConfig(_Strict):
    """How concurrent requests become runtime calls."""

    kind: Literal["auto", "shared", "pool", "batch"] = "auto"
    instances: int | Auto = Field("auto", description="runtime instances (workers)")
    threads: int | Auto = Field("auto", description="intra-op threads per instance")
    max_batch_size: int | Auto = Field("auto", description="rows per runtime call")
    max_delay_ms: float = Field(0.0, ge=0, description="0: work-conserving, never waits on a timer")
    max_queue: int = Field(256, gt=0)
    max_in_flight: int | None = Field(None, description="shared kind: concurrent calls bound")
    wide_when_idle: bool = Field(
        True,
        description="with several narrow workers, run a lone request on an all-cores instance",
    )
    pad: PaddingConfig | None = Field(
        None, description="pad dynamic dims so different shapes share a batch; true: defaults"
    )
    timeout_ms: float | None = Field(None, gt=0, description="default per-request deadline")

    @field_validator("instances", "threads", "max_batch_size")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1 or 'auto'")
        return value

    @field_validator("pad", mode="before")
    @classmethod
    def _pad_flag(cls, value: object) -> object:
        if value is True:
            return PaddingConfig()
        return None if value is False else value


class VersionPolicy(_Strict):
    """Which versions are served, as in Triton."""

    latest: int | None = 1
    specific: list[int] | None = None
    all: bool = False


class StepTensorNames(_Strict):
    """The step model's tensors (see runtimes/step_model.py)."""

    tokens: str = "tokens"
    lengths: str = "lengths"
    state: str = "state"
    logits: str = "logits"
    state_out: str = "state_out"


class GenerateConfig(_Strict):
    """A text model run step by step (task: generate), served by the continuous batcher."""

    tokenizer: str = Field(
        "bytes", description="'bytes' (UTF-8 bytes are tokens 0..255) or a tokenizer.json file"
    )
    eos_token: int = Field(256, ge=0, description="ends a sequence; never part of the text")
    bos_token: int | None = Field(None, ge=0, description="fed before every prompt")
    max_tokens: int = Field(128, gt=0, description="a request's output length when it sets none")
    max_tokens_limit: int = Field(1024, gt=0, description="the most a request may ask for")
    max_prompt_tokens: int = Field(2048, gt=0)
    batching: Literal["continuous", "request"] = Field(
        "continuous",
        description="continuous: sequences join and leave at every step; request: a batch "
        "runs until all its members finish (for comparison)",
    )
    tensors: StepTensorNames = Field(default_factory=StepTensorNames)


class EmbedConfig(_Strict):
    """A text-embedding model (task: embed): texts in, one vector per text out."""

    tokenizer: str = Field("tokenizer.json", description="tokenizers' JSON beside model.yaml")
    max_tokens: int = Field(256, gt=0, description="longer texts are truncated")
    max_texts: int = Field(256, gt=0, description="texts in one request")
    ids_input: str = "input_ids"
    mask_input: str | None = "attention_mask"
    output: str | None = Field(None, description="the embedding output; the model's first if unset")


class ModelConfig(_Strict):
    """A whole model.yaml."""

    name: str | None = None
    backend: str = Field(
        "onnx",
        description="the runtime: onnx, torch, tensorflow, tflite, python, or one an installed "
        "package registers (see runtimes/registry.py)",
    )
    #: The runtime's own settings, validated by that runtime when the model loads.
    options: dict[str, object] = Field(default_factory=dict)
    task: Literal["classify", "generate", "embed"] = Field(
        "classify", description="what the model does, so which routes and scheduler serve it"
    )
    generate: GenerateConfig | None = None
    embed: EmbedConfig | None = None
    artifact: str | None = Field(None, description="file inside the version folder")
    inputs: list[TensorConfig] = Field(default_factory=list)
    outputs: list[TensorConfig] = Field(default_factory=list)
    preprocessing: ImagePreprocessing | None = None
    labels: str | None = Field(None, description="labels file beside model.yaml, one per line")
    classification: ClassificationConfig = Field(default_factory=ClassificationConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    version_policy: VersionPolicy = Field(default_factory=VersionPolicy)
    device: Literal["cpu", "cuda"] = "cpu"
    allow_pickle: bool = Field(False, description="torch: unpickle Python objects (trust needed)")
    allow_code: bool = Field(False, description="run the model's own Python code (trust needed)")
    concurrency_safe: bool | None = Field(
        None, description="set by `batchserve check`; None: the runtime's own answer"
    )
    warmup: bool = True

    @model_validator(mode="before")
    @classmethod
    def _backend_section(cls, raw: object) -> object:
        """`options:` may also be spelled as a section named after the backend (`torch:`
        for backend torch, `python:` for backend python); and the top-level `providers:`
        of older files is ONNX Runtime's option."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        backend = raw.get("backend", "onnx")
        if isinstance(backend, str) and backend in raw and backend not in cls.model_fields:
            if raw.get("options"):
                raise ValueError(f"give the runtime's options once: 'options' or {backend!r}")
            raw["options"] = raw.pop(backend) or {}
        if "providers" in raw:
            if backend != "onnx":
                raise ValueError("'providers' is an ONNX Runtime option (backend onnx)")
            options = dict(raw.get("options") or {})
            if "providers" in options:
                raise ValueError("give 'providers' once: under 'options'")
            options["providers"] = raw.pop("providers")
            raw["options"] = options
        return raw

    @model_validator(mode="after")
    def _task_section(self) -> ModelConfig:
        """The task's section takes its defaults when absent; another task's is refused."""
        if self.task == "generate" and self.generate is None:
            self.generate = GenerateConfig()
        if self.task == "embed" and self.embed is None:
            self.embed = EmbedConfig()
        for section in ("generate", "embed"):
            if getattr(self, section) is not None and self.task != section:
                raise ValueError(f"section {section!r} needs task: {section}")
        return self


def load_model_config(path: Path) -> ModelConfig:
    """Parse and validate one model.yaml; errors name the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text()) if path.exists() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return ModelConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc
