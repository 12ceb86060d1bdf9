"""The request bodies of vaekit serve's API, with their limits: FastAPI answers a body outside them with
a 422 naming the field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_ABS_Z = 50.0  # a latent coordinate beyond this is an error, not a picture
MAX_SAMPLES = 256
MAX_STEPS = 64
MAX_UPLOAD_BYTES = 5 * 2**20
MAX_BODY_BYTES = MAX_UPLOAD_BYTES + 2**16  # an upload and its multipart framing; refused unread beyond
MAX_UPLOAD_PIXELS = 4096 * 4096
N_REFERENCE = 2000  # test images encoded at start: the pad's scatter, neighbours, interpolation ends


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run: int = Field(0, ge=0, description="which run (the order of vaekit serve's arguments)")


class DecodeRequest(_Request):
    z: list[float] = Field(..., description="one latent vector (a VQ-VAE: its codes, row by row)")
    label: int | None = Field(None, description="the class, for a conditional model")
    format: Literal["png", "base64"] = "png"


class SampleRequest(_Request):
    n: int = Field(16, ge=1, le=MAX_SAMPLES)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    temperature: float | None = Field(None, gt=0, le=10)  # None: the run's own (an hvae's chosen ones)
    # the prior to draw from: fitted, or the one the run trained with ("standard": its old name)
    prior: Literal["fitted", "trained", "standard"] | None = None
    label: int | None = None
    format: Literal["png", "base64"] = "png"


class InterpolateRequest(_Request):
    start: int = Field(..., ge=0, description="a reference test image")
    end: int = Field(..., ge=0)
    steps: int = Field(8, ge=2, le=MAX_STEPS)
    spherical: bool = False
    format: Literal["png", "base64"] = "png"


class TraverseRequest(_Request):
    z: list[float]
    dim: int = Field(..., ge=0)
    steps: int = Field(9, ge=2, le=MAX_STEPS)
    limit: float = Field(3.0, gt=0, le=MAX_ABS_Z)
    label: int | None = None
    format: Literal["png", "base64"] = "png"


class NeighboursRequest(_Request):
    z: list[float]
    k: int = Field(8, ge=1, le=64)


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: int | None = None
    indices: list[int] | None = Field(None, max_length=N_REFERENCE)


class AttributeRequest(_Request):
    z: list[float]
    a: Group
    b: Group
    steps: int = Field(8, ge=2, le=MAX_STEPS)
    scale: float = Field(1.0, gt=0, le=10)
    label: int | None = None
    format: Literal["png", "base64"] = "png"
