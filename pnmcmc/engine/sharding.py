r"""One chain's time axis split across devices: a sharded scan of affine maps, and the placement of
everything else along time.

**The scan.** A Newton-type iteration solves $x_t = A_t x_{t-1} + b_t$, $t = 1..T$
(`pnmcmc.engine.scans`), where the maps $\phi_t = (A_t, b_t)$ compose associatively:
$\phi_s \bullet \phi_t = (A_t A_s,\; A_t b_s + b_t)$ (first $\phi_s$, then $\phi_t$). Split the
time axis into $n$ contiguous blocks $\mathcal B_0, \dots, \mathcal B_{n-1}$ of $L = \lceil T/n \rceil$
steps, one per device. Then

1. **local scan**: device $k$ computes the prefixes of its own block, $\Phi^{(k)}_t =
   \phi_{kL+1} \bullet \cdots \bullet \phi_t$ for $t \in \mathcal B_k$, with `lax.associative_scan`
   (depth $O(\log L)$); the last of them, $\Psi_k = (\hat A_k, \hat b_k)$, is the whole block's map;
2. **exchange**: every device gathers the $n$ block maps (`all_gather`: $n$ matrices of $D \times D$,
   or $n$ vectors of $D$ for diagonal $A_t$; $O(n D^2)$ traffic, independent of $T$);
3. **exclusive prefix**: device $k$ composes the blocks before it,
   $E_k = \Psi_0 \bullet \cdots \bullet \Psi_{k-1}$ ($E_0$ the identity), so the state entering its
   block is $s_k = E_k(x_0) = \bar A_k x_0 + \bar b_k$;
4. **fix-up**: $x_t = \Phi^{(k)}_t(s_k) = A^{(k)}_t s_k + b^{(k)}_t$ for $t \in \mathcal B_k$, a local
   elementwise-in-time operation.

Associativity makes this the same composition as the one-device scan, in another order: the result
differs by round-off only. The depth is $O(\log(T/n) + \log n)$ and each device holds $O(T D^2 / n)$
(dense) or $O(T D / n)$ (diagonal) of the scan. When $n$ does not divide $T$ the maps are padded at
the end with identities $(I, 0)$, which change no prefix, and the padding is cut from the result.

**Everything else.** The rest of an iteration is elementwise in time (the step function and its
Jacobian at every shifted state, the residuals, the certificate):
[`TimeSplit`][pnmcmc.engine.sharding.TimeSplit] constrains those arrays to be split along time
over the same mesh (`with_sharding_constraint`), and XLA's SPMD partitioner runs each device's part
where it lies. The iteration loop itself
(`pnmcmc.engine.iterate`) is unchanged: it receives the `TimeSplit` as the *linear scan* its solver's
linear solve uses, and as the placement of its per-step arrays.

**Many chains.** A batch of chains is split along its chain axis instead
([`spread_chains`][pnmcmc.engine.sharding.spread_chains]): each device solves its own chains whole,
with no communication but the loop's shared stopping test. With fewer chains than devices, the time
axis of every chain is split instead.

Not split (computed on the whole axis, which XLA gathers): the trust-region solvers' Kalman smoother
(`ELK`, `QuasiELK`), Picard's cumulative sum, and the sequential fallback; their results are exact
either way, only their memory is not divided.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import scans

__all__ = [
    "ChainSpread",
    "TimeSplit",
    "affine_dense_sharded",
    "affine_diagonal_sharded",
    "as_mesh",
    "spread_chains",
]

AXIS = "time"
"""The name of the mesh axis `as_mesh` builds from a list of devices."""


def as_mesh(devices, axis_name: str = AXIS) -> Mesh:
    """A 1-D `jax.sharding.Mesh` from a list of devices, or the given 1-D mesh itself.

    Raises `ValueError` for an empty list or a mesh of more than one axis, `TypeError` for anything
    else.
    """
    if isinstance(devices, Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(
                f"devices: a Mesh with exactly one axis is needed (the axis to split over), got axes "
                f"{devices.axis_names}."
            )
        return devices
    if isinstance(devices, jax.Device):
        devices = [devices]
    try:
        devices = list(devices)
    except TypeError:
        raise TypeError(
            f"devices must be None, a list of jax devices or a 1-D jax.sharding.Mesh, got {devices!r}."
        ) from None
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(
            f"devices must be a non-empty list of jax devices (e.g. jax.devices()), got {devices!r}."
        )
    if len(set(devices)) != len(devices):
        raise ValueError("devices lists a device more than once.")
    return Mesh(np.array(devices), (axis_name,))


def _identity_dense(n, d, dtype):
    return jnp.broadcast_to(jnp.eye(d, dtype=dtype), (n, d, d))


def _identity_diagonal(n, d, dtype):
    return jnp.ones((n, d), dtype)


def _sharded(a, b, x0, mesh, compose, apply, identity):
    """The four stages of the module docstring on `mesh`'s only axis; `compose(earlier, later)`,
    `apply(prod, state)` and `identity(n, d, dtype)` say whether the maps are dense or diagonal."""
    (axis,) = mesh.axis_names
    n_dev = mesh.devices.size
    n, d = b.shape
    if x0 is None:
        x0 = jnp.zeros((d,), b.dtype)
    length = math.ceil(n / n_dev)
    pad = length * n_dev - n
    if pad:  # identity maps at the end change no prefix
        a = jnp.concatenate([a, identity(pad, d, a.dtype)])
        b = jnp.concatenate([b, jnp.zeros((pad, d), b.dtype)])

    def local(a, b, x0):
        prod, offset = lax.associative_scan(compose, (a, b))  # 1. prefixes within the block
        blocks = lax.all_gather((prod[-1], offset[-1]), axis)  # 2. every block's map, (n_dev, ...)
        before_a, before_b = lax.associative_scan(compose, blocks)  # 3. prefixes over the blocks
        k = lax.axis_index(axis)
        entering = jnp.where(
            k == 0, x0, apply(before_a[jnp.maximum(k - 1, 0)], x0) + before_b[jnp.maximum(k - 1, 0)]
        )
        return apply(prod, entering) + offset  # 4. fix-up

    spec = PartitionSpec(axis)
    x = jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, PartitionSpec()), out_specs=spec)(a, b, x0)
    return x[:n] if pad else x


def _apply_dense(prod, state):
    return jnp.einsum("...ij,j->...i", prod, state)


def _apply_diagonal(prod, state):
    return prod * state


def affine_dense_sharded(a, b, x0=None, *, mesh: Mesh):
    """Solve `x_t = A_t @ x_{t-1} + b_t`, t = 1..T, with the time axis split over `mesh` (1-D).

    **Arguments:** `a` of shape (T, D, D), `b` of shape (T, D); `x0` of shape (D,), zero if
    omitted; `mesh` a 1-D `jax.sharding.Mesh`. Any T >= 1 (padded with identity maps to a multiple
    of the number of devices).

    **Returns:** the states `x_1..x_T`, shape (T, D), equal to
    [`affine_dense`][pnmcmc.engine.scans.affine_dense] up to round-off.
    """
    return _sharded(a, b, x0, mesh, scans._compose_dense, _apply_dense, _identity_dense)


def affine_diagonal_sharded(a, b, x0=None, *, mesh: Mesh):
    """Solve `x_t = a_t * x_{t-1} + b_t` (elementwise), t = 1..T, with the time axis split over
    `mesh` (1-D); `a`, `b` of shape (T, D). As
    [`affine_dense_sharded`][pnmcmc.engine.sharding.affine_dense_sharded] otherwise."""
    return _sharded(a, b, x0, mesh, scans._compose_diagonal, _apply_diagonal, _identity_diagonal)


@dataclasses.dataclass(frozen=True)
class TimeSplit:
    """The time axis of a solve split over a 1-D `mesh`: the linear scans of its solver and the
    placement of its per-step arrays.

    It has the interface of the `pnmcmc.engine.scans` module that the Jacobian approximations use
    (`affine_dense`, `affine_diagonal`, the Kalman smoothers), so the iteration loop passes either
    one to the solver's update. Frozen and hashable: it is a static argument of the compiled solve.
    """

    mesh: Mesh

    @property
    def devices(self) -> int:
        return int(self.mesh.devices.size)

    def constrain(self, tree):
        """Every array of `tree` with a leading (time) axis split along it over the mesh."""
        (axis,) = self.mesh.axis_names
        split = NamedSharding(self.mesh, PartitionSpec(axis))

        def one(a):
            if jnp.ndim(a) == 0 or a.shape[0] < self.devices:
                return a
            return lax.with_sharding_constraint(a, split)

        return jax.tree.map(one, tree)

    def put(self, tree):
        """The arrays of `tree` placed on the mesh before a solve: split along the leading (time)
        axis where the number of devices divides it, else a copy on every device (the compiled
        solve then splits them itself). With several processes (`jax.distributed.initialize`)
        every process passes the same full arrays and each keeps its own devices' parts."""
        (axis,) = self.mesh.axis_names
        split = NamedSharding(self.mesh, PartitionSpec(axis))
        whole = NamedSharding(self.mesh, PartitionSpec())

        def one(a):
            divisible = jnp.ndim(a) > 0 and a.shape[0] % self.devices == 0
            sharding = split if divisible else whole
            if jax.process_count() == 1 or jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                return jax.device_put(a, sharding)
            host = np.asarray(a)
            return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

        return jax.tree.map(one, tree)

    def deliver(self, tree):
        """The result of a split solve as its caller receives it: as XLA laid it out in one process;
        with several processes a copy on every device, so that each process can read the whole
        `Solution` (a trajectory of T x D, besides the T / n steps each device works on)."""
        if not self.mesh.is_multi_process:
            return tree
        whole = NamedSharding(self.mesh, PartitionSpec())
        return jax.tree.map(lambda a: lax.with_sharding_constraint(a, whole), tree)

    def affine_dense(self, a, b, x0=None, *, reverse=False):
        if reverse:  # backward recurrences (the Kalman smoother's) are not split
            return scans.affine_dense(a, b, x0, reverse=True)
        return affine_dense_sharded(a, b, x0, mesh=self.mesh)

    def affine_diagonal(self, a, b, x0=None, *, reverse=False):
        if reverse:
            return scans.affine_diagonal(a, b, x0, reverse=True)
        return affine_diagonal_sharded(a, b, x0, mesh=self.mesh)

    def kalman_smoother_dense(self, *args, **kwargs):
        return scans.kalman_smoother_dense(*args, **kwargs)

    def kalman_smoother_diagonal(self, *args, **kwargs):
        return scans.kalman_smoother_diagonal(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class ChainSpread:
    """How a batch of chains (one solve each, leading axis: chains) uses several devices.

    - `chains`: a 1-D mesh the chain axis is split over (each device solves its own chains whole),
      or None;
    - `time`: a [`TimeSplit`][pnmcmc.engine.sharding.TimeSplit] that splits every chain's time axis
      over all the devices, or None.

    Built by [`spread_chains`][pnmcmc.engine.sharding.spread_chains]; exactly one of the two is set.
    """

    chains: Mesh | None
    time: TimeSplit | None

    @property
    def devices(self) -> list:
        mesh = self.chains if self.chains is not None else self.time.mesh
        return list(mesh.devices.flat)

    def put(self, tree, num_chains: int):
        """The arrays of `tree` placed for the solve: with `chains`, each array whose leading axis
        is the chain axis split along it and the rest copied to every device; with `time`, as
        they are (the compiled solve splits time itself)."""
        if self.chains is None:
            return tree
        (axis,) = self.chains.axis_names
        split = NamedSharding(self.chains, PartitionSpec(axis))
        whole = NamedSharding(self.chains, PartitionSpec())

        def one(a):
            batched = jnp.ndim(a) > 0 and a.shape[0] == num_chains
            return jax.device_put(a, split if batched else whole)

        return jax.tree.map(one, tree)


def spread_chains(devices, num_chains: int) -> ChainSpread:
    """Spread `num_chains` chains over `devices` (a list or a 1-D mesh).

    With at least as many chains as devices the chains are split: over the largest number k of
    the devices that divides `num_chains` (8 chains on 3 devices use 2 of them, 4 chains each), so
    that every device solves the same number of whole chains. With fewer chains than devices, the
    time axis of every chain is split over all of them instead.
    """
    mesh = as_mesh(devices, "chains")
    flat = list(mesh.devices.flat)
    if num_chains >= len(flat):
        k = max(j for j in range(1, len(flat) + 1) if num_chains % j == 0)
        return ChainSpread(chains=Mesh(np.array(flat[:k]), ("chains",)), time=None)
    return ChainSpread(chains=None, time=TimeSplit(Mesh(np.array(flat), (AXIS,))))
