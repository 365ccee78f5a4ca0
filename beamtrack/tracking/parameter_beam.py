"""``ParameterBeam``: a beam described by its first and second moments only."""

from __future__ import annotations

from typing import Any

import array_api_compat

from beamtrack.backends import backend_of
from beamtrack.backends.pytrees import ensure_registered, register_pytree
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.statistics import centroid, covariance


class ParameterBeam:
    """A beam as mean vector and covariance matrix, tracked with first-order maps.

    Through a map ``(R, c)`` the moments transform exactly as
    ``mean -> R mean + c`` and ``Sigma -> R Sigma R^T``: tracking a particle beam and
    the parameter beam built from it through a linear beamline gives the same second
    moments. Arrays may carry batch dimensions.

    Parameters
    ----------
    mean
        Centroid ``(*batch, 6)`` in Bmad coordinates.
    covariance
        Covariance ``(*batch, 6, 6)``.
    p0c, mc2
        Reference momentum and rest energy [eV] (numbers or arrays).
    s
        Longitudinal position [m].
    """

    __slots__ = ("mean", "covariance", "p0c", "mc2", "s")

    def __init__(self, mean: Any, covariance: Any, *, p0c: Any, mc2: Any, s: Any = 0.0):
        ensure_registered()
        if not (array_api_compat.is_array_api_obj(mean)
                and array_api_compat.is_array_api_obj(covariance)):
            raise ParameterError("ParameterBeam: mean and covariance must be arrays")
        if mean.shape[-1:] != (6,) or covariance.shape[-2:] != (6, 6):
            raise ParameterError(
                "ParameterBeam: mean must have shape (*batch, 6) and covariance (*batch, 6, 6), "
                f"got {tuple(mean.shape)} and {tuple(covariance.shape)}"
            )
        xp = array_api_compat.array_namespace(mean, covariance)
        like = mean

        def ref(value: Any) -> Any:
            if array_api_compat.is_array_api_obj(value):
                return value
            return xp.asarray(float(value), dtype=like.dtype, device=array_api_compat.device(like))

        for name, value in (("mean", mean), ("covariance", covariance), ("p0c", ref(p0c)),
                            ("mc2", ref(mc2)), ("s", ref(s))):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ParameterBeam is immutable")

    @classmethod
    def from_particles(cls, particles: Particles, weights: Any = None) -> ParameterBeam:
        """Moments of the alive particles (optionally weighted)."""
        return cls(centroid(particles, weights), covariance(particles, weights),
                   p0c=particles.p0c, mc2=particles.mc2, s=particles.s)

    def to_particles(self, n: int, seed: int = 0) -> Particles:
        """A Gaussian particle beam with these moments, on this beam's backend."""
        from beamtrack.tracking.beams import from_covariance

        backend = backend_of(self.mean)
        covariance_arg: Any = self.covariance
        if backend.name == "numpy":
            covariance_arg = backend.to_numpy(self.covariance)
        return from_covariance(n, covariance=covariance_arg, mean=self.mean, p0c=self.p0c,
                               mc2=self.mc2, seed=seed, backend=backend.name,
                               dtype=self.mean.dtype, s=self.s)

    def transformed(self, r: Any, c: Any, length: Any = 0.0, p0c: Any = None) -> ParameterBeam:
        """The beam after the first-order map ``(R, c)`` over ``length`` [m]."""
        xp = array_api_compat.array_namespace(self.mean)
        mean = xp.matmul(r, self.mean[..., None])[..., 0] + c
        cov = xp.matmul(xp.matmul(r, self.covariance), xp.matrix_transpose(r))
        return ParameterBeam(mean, cov, p0c=self.p0c if p0c is None else p0c, mc2=self.mc2,
                             s=self.s + length)

    @property
    def xp(self) -> Any:
        """The array namespace of the moments (as ``Particles.xp``)."""
        return array_api_compat.array_namespace(self.mean)

    @property
    def dtype(self) -> Any:
        """Floating dtype of the moments."""
        return self.mean.dtype

    @property
    def device(self) -> Any:
        """Device of the moments."""
        return array_api_compat.device(self.mean)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Batch dimensions ``(*batch)`` of the moments."""
        return tuple(self.mean.shape[:-1])

    @property
    def sigma(self) -> Any:
        """RMS sizes of the six coordinates, ``(*batch, 6)``."""
        xp = array_api_compat.array_namespace(self.covariance)
        return xp.sqrt(xp.stack([self.covariance[..., i, i] for i in range(6)], axis=-1))

    def __repr__(self) -> str:
        backend = backend_of(self.mean).name
        return f"ParameterBeam(batch={tuple(self.mean.shape[:-1])}, backend={backend!r})"


def _flatten(b: ParameterBeam) -> tuple[tuple[Any, ...], None]:
    return (b.mean, b.covariance, b.p0c, b.mc2, b.s), None


def _unflatten(aux: None, children: Any) -> ParameterBeam:
    obj = object.__new__(ParameterBeam)
    for name, value in zip(ParameterBeam.__slots__, children):
        object.__setattr__(obj, name, value)
    return obj


register_pytree(ParameterBeam, _flatten, _unflatten)
