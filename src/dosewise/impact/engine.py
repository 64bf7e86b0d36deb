"""Deterministic age-structured SEIR model with vaccination, for all participants at once.

State
-----
One array ``x`` of shape ``(C, n·16)``: compartment × (participant, age band). With ``m``
products the compartments are

========  ====================================================================================
``S``     unvaccinated, susceptible (eligible for vaccination)
``Sw``    vaccinated, protection waned: susceptible, full IFR, not eligible again
``Eu/Iu`` latent / infectious, infected while unvaccinated
``Ev/Iv`` latent / infectious, infected after vaccination
``Ru``    recovered, unvaccinated (eligible: nobody knows who was infected)
``Rv``    recovered, vaccinated
``P``     vaccinated and protected against infection (all-or-nothing share ``e_inf``)
``V_k``   vaccinated with product k, not yet protected (susceptible, full IFR)
``Sv_k``  vaccinated with product k, not protected against infection (share ``1 − e_inf``)
          but leaky protection ``e_bt`` against death if infected, with
          ``(1 − e_inf)(1 − e_bt) = 1 − e_sev`` so that overall protection against death is
          ``e_sev`` (nimue's split of efficacy against infection and against disease)
========  ====================================================================================

followed by counters that are not people: ``QE``/``QI`` (expected deaths, IFR-free, among the
latent/infectious), ``Dw`` (deaths divided by the band's IFR) and ``Cinf`` (cumulative
infections). Deaths are ``ifr × Dw``, dated at the end of the infectious period; the dead stay
in ``R`` (they no longer transmit either way, and ``N`` in the force of infection is the
population at the start, a standard frequency-dependent simplification), so the living
compartments always sum to the population.

Equations
---------
``λ = β(t) · M (I/N)`` per participant with ``M[i, j]`` the Prem contacts of band ``i`` with
band ``j``; infection moves ``S, Sw, V_k, Sv_k`` to ``Eu`` (from ``S``) or ``Ev`` at rate
``λ``; ``E → I`` at ``1/latent``; ``I → R`` at ``1/infectious``; ``V_k → P`` at
``e_inf,k/delay_k`` and ``V_k → Sv_k`` at ``(1 − e_inf,k)/delay_k``; ``P, Sv_k → Sw`` at
``1/waning`` (off by default). All of it is ``dx/dt = L x + λ ⊙ (G x)`` with two constant
``C × C`` matrices, which is why a step is a handful of NumPy calls whatever ``n``.

Vaccination is a pulse at the start of each day (see :mod:`.vaccination`); between pulses the
ODE is integrated with classical RK4 at ``steps_per_day`` steps. ``β`` is calibrated per
participant from ``R0`` as ``R0 / (infectious_days · ρ(M))``: the next-generation matrix at the
disease-free state, ``β · infectious_days · diag(N) M diag(N)⁻¹``, is similar to
``β · infectious_days · M``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import sparse

from dosewise.errors import InputError, ReferenceDataError
from dosewise.impact.parameters import (
    N_BANDS as N_BANDS,
)
from dosewise.impact.parameters import (
    ImpactParams,
    fold_to_16,
    health_multiplier,
    ifr_by_band,
    per_participant,
    priority_groups,
)
from dosewise.world import World

FloatArray = npt.NDArray[np.float64]

S, SW = 0, 1
"""Rows of the first two compartments; the others depend on the number of products (see :class:`Layout`)."""


@dataclass(frozen=True)
class Layout:
    """Compartment rows for ``m`` products: the susceptible ones first (``S, Sw, V_k, Sv_k``),
    then ``Eu, Iu, Ev, Iv, Ru, Rv, P``, then the counters ``QE, QI, Dw, Cinf``."""

    m: int

    @property
    def v(self) -> slice:
        return slice(2, 2 + self.m)

    @property
    def sv(self) -> slice:
        return slice(2 + self.m, 2 + 2 * self.m)

    @property
    def n_susceptible(self) -> int:
        return 2 + 2 * self.m

    @property
    def eu(self) -> int:
        return self.n_susceptible

    @property
    def iu(self) -> int:
        return self.n_susceptible + 1

    @property
    def ev(self) -> int:
        return self.n_susceptible + 2

    @property
    def iv(self) -> int:
        return self.n_susceptible + 3

    @property
    def ru(self) -> int:
        return self.n_susceptible + 4

    @property
    def rv(self) -> int:
        return self.n_susceptible + 5

    @property
    def p(self) -> int:
        return self.n_susceptible + 6

    @property
    def living(self) -> int:
        return self.n_susceptible + 7

    @property
    def qe(self) -> int:
        return self.living

    @property
    def qi(self) -> int:
        return self.living + 1

    @property
    def dw(self) -> int:
        return self.living + 2

    @property
    def cinf(self) -> int:
        return self.living + 3

    @property
    def size(self) -> int:
        return self.living + 4

    def names(self) -> list[str]:
        return (["S", "Sw"] + [f"V{k}" for k in range(self.m)] + [f"Sv{k}" for k in range(self.m)]
                + ["Eu", "Iu", "Ev", "Iv", "Ru", "Rv", "P", "QE", "QI", "Dw", "Cinf"])


@dataclass(frozen=True)
class Vaccines:
    """Doses per day per participant × product, and the products' properties.

    ``doses[p, k, d]``: doses of product ``k`` ready to be administered in participant ``p`` on
    day ``d`` (what :func:`dosewise.impact.vaccination.doses_from_allocation` makes).
    ``e_inf``/``e_sev``: efficacy against infection (symptomatic-disease efficacy as the proxy)
    and against death (severe-disease efficacy as the proxy); ``delay_days``: mean delay from
    the first dose of a course to protection.
    """

    products: tuple[str, ...]
    doses: FloatArray
    doses_per_course: FloatArray
    e_inf: FloatArray
    e_sev: FloatArray
    delay_days: FloatArray

    @property
    def m(self) -> int:
        return len(self.products)

    @property
    def e_breakthrough(self) -> FloatArray:
        """Leaky protection against death among the vaccinated who are infected anyway."""
        with np.errstate(divide="ignore", invalid="ignore"):
            bt = np.where(self.e_inf < 1.0, 1.0 - (1.0 - self.e_sev) / (1.0 - self.e_inf), 1.0)
        return np.asarray(np.clip(bt, 0.0, 1.0), dtype=np.float64)

    def scaled(self, factor: float | FloatArray) -> Vaccines:
        return Vaccines(self.products, self.doses * factor, self.doses_per_course, self.e_inf, self.e_sev,
                        self.delay_days)

    def with_efficacy(self, e_inf: FloatArray, e_sev: FloatArray) -> Vaccines:
        return Vaccines(self.products, self.doses, self.doses_per_course, np.asarray(e_inf, dtype=np.float64),
                        np.asarray(e_sev, dtype=np.float64), self.delay_days)


def product_vaccines(
    world: World, products: list[str], doses: FloatArray, params: ImpactParams
) -> Vaccines:
    """:class:`Vaccines` for ``products`` with efficacy from the world's catalogue (or ``params.efficacy``)."""
    cat = world.products
    unknown = [p for p in products if p not in cat.index]
    if unknown:
        raise InputError("product not in the catalogue", field="products", value=unknown[0])
    e_inf = np.empty(len(products))
    e_sev = np.empty(len(products))
    for k, pid in enumerate(products):
        if pid in params.efficacy:
            e_inf[k], e_sev[k] = params.efficacy[pid]
            continue
        sym, sev = np.array([cat.at[pid, "efficacy_symptomatic"], cat.at[pid, "efficacy_severe"]], dtype=np.float64)
        for name, val in (("efficacy_symptomatic", sym), ("efficacy_severe", sev)):
            if not np.isfinite(float(val)):
                raise InputError(
                    f"product {pid} has no sourced {name} in the catalogue; the impact model needs it: give "
                    f"{name} with its source for {pid} under `products:` in the scenario",
                    field=f"products.{pid}.{name}",
                )
        e_inf[k], e_sev[k] = float(sym), float(sev)
    course = cat.loc[products, "doses_per_course"].to_numpy(dtype=np.float64)
    interval = cat.loc[products, "interval_days"].to_numpy(dtype=np.float64)
    wait = interval * (course - 1) if params.include_interval_in_delay else np.zeros_like(course)
    delay = params.delay_to_protection_days + wait
    return Vaccines(tuple(products), np.asarray(doses, dtype=np.float64), course, e_inf, e_sev, delay)


@dataclass(frozen=True)
class Setup:
    """Everything about the population and the disease, per participant (no vaccines)."""

    codes: tuple[str, ...]
    pop: FloatArray  # (n, 16)
    contacts: FloatArray  # (n, 16, 16)
    contact_source: tuple[str, ...]
    ifr: FloatArray  # (n, 16)
    beta: FloatArray  # (days, n)
    prior_immunity: FloatArray  # (n, 16)
    params: ImpactParams
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.codes)

    @property
    def days(self) -> int:
        return int(self.beta.shape[0])

    def subset(self, idx: npt.NDArray[np.intp] | list[int]) -> Setup:
        ix = np.asarray(idx, dtype=np.intp)
        return Setup(
            tuple(self.codes[i] for i in ix), self.pop[ix], self.contacts[ix],
            tuple(self.contact_source[i] for i in ix), self.ifr[ix], self.beta[:, ix], self.prior_immunity[ix],
            self.params, self.notes,
        )


def spectral_radius(mats: FloatArray) -> FloatArray:
    """Dominant eigenvalue modulus of each matrix in a stack (n, k, k)."""
    return np.asarray(np.abs(np.linalg.eigvals(mats)).max(axis=-1), dtype=np.float64)


def contact_like(world: World, like: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Stand-ins for contact matrices: explicit ``like``, else an ``age_structure_like`` column, else a parent."""
    parts = world.participants
    out: dict[str, str | None] = {}
    for col in ("parent", "age_structure_like"):
        if col in parts.columns:
            for code, v in parts[col].items():
                if isinstance(v, str) and v:
                    out[str(code)] = v
    out.update(dict(like or {}))
    return out


def prepare(world: World, params: ImpactParams, *, like: Mapping[str, str] | None = None) -> Setup:
    """Population (WPP 2024 folded to 75+), Prem contact matrices, IFR and β per participant."""
    from dosewise.reference.contacts import contact_matrices

    codes = [str(c) for c in world.codes]
    pop21 = np.asarray(world.pop_by_age, dtype=np.float64)
    bad = [codes[i] for i in np.flatnonzero(~np.isfinite(pop21).all(axis=1))]
    if bad:
        raise ReferenceDataError(
            f"no population by age for {', '.join(bad)}: the impact model needs it; set `age_structure_like:` "
            "for them in the scenario"
        )
    pop = fold_to_16(pop21)
    if (pop.sum(axis=1) <= 0).any():
        raise ReferenceDataError("a participant has zero population")
    cm = contact_matrices(
        codes,
        like=contact_like(world, like),
        income_levels=[None if not isinstance(v, str) else v for v in world.participants["income_level"]],
        setting=params.contact_setting,
    )
    incomes = [None if not isinstance(v, str) else v for v in world.participants["income_level"]]
    ifr = ifr_by_band(pop21, params.ifr_source)
    ifr = np.minimum(ifr * health_multiplier(incomes, codes, params.health_system)[:, None], 1.0)
    r0 = per_participant(params.r0, codes, "r0")
    rho = spectral_radius(cm.matrices)
    beta0 = r0 / (params.infectious_days * rho)
    beta = np.repeat(beta0[None, :], params.days, axis=0)
    if params.rt:
        for day in sorted(params.rt):
            if 0 <= day < params.days:
                beta[day:] = params.rt[day] / (params.infectious_days * rho)
    if params.prior_immunity_by_age is not None:
        prior = np.broadcast_to(np.asarray(params.prior_immunity_by_age, dtype=np.float64), (len(codes), N_BANDS))
    else:
        prior = np.repeat(per_participant(params.prior_immunity, codes, "prior_immunity")[:, None], N_BANDS, axis=1)
    if ((prior < 0) | (prior + params.seed_fraction >= 1)).any():
        raise InputError("prior_immunity + seed_fraction must be in [0, 1)", field="prior_immunity")
    notes = {c: s for c, s in zip(codes, cm.source, strict=True) if s.startswith(("proxy:", "income-mean:"))}
    return Setup(tuple(codes), pop, cm.matrices, cm.source, ifr, beta, np.array(prior), params, notes)


def rate_matrices(lay: Layout, vac: Vaccines | None, params: ImpactParams) -> tuple[FloatArray, FloatArray]:
    """The constant ``L`` (linear transitions) and ``G`` (infection, multiplied by λ) matrices, ``C × C``."""
    c = lay.size
    lin = np.zeros((c, c))
    gin = np.zeros((c, c))

    def flow(mat: FloatArray, src: int, dst: int, rate: float) -> None:
        mat[src, src] -= rate
        mat[dst, src] += rate

    sigma, gamma = 1.0 / params.latent_days, 1.0 / params.infectious_days
    eu, iu, ev, iv = lay.eu, lay.iu, lay.ev, lay.iv
    flow(lin, eu, iu, sigma)
    flow(lin, iu, lay.ru, gamma)
    flow(lin, ev, iv, sigma)
    flow(lin, iv, lay.rv, gamma)
    flow(lin, lay.qe, lay.qi, sigma)
    flow(lin, lay.qi, lay.dw, gamma)
    omega = 0.0 if params.waning_days is None else 1.0 / params.waning_days
    if omega > 0:
        flow(lin, lay.p, SW, omega)
    if params.natural_immunity_days is not None:
        # immunity after infection wanes: the unvaccinated recovered become susceptible (and eligible) again,
        # the vaccinated recovered join the waned vaccinated
        kappa = 1.0 / params.natural_immunity_days
        flow(lin, lay.ru, S, kappa)
        flow(lin, lay.rv, SW, kappa)

    def infect(src: int, dst: int, death_weight: float) -> None:
        flow(gin, src, dst, 1.0)
        gin[lay.qe, src] += death_weight
        gin[lay.cinf, src] += 1.0

    infect(S, eu, 1.0)
    infect(SW, ev, 1.0)
    if vac is not None:
        bt = vac.e_breakthrough
        for k in range(lay.m):
            vk, svk = int(lay.v.start) + k, int(lay.sv.start) + k
            nu = 1.0 / float(vac.delay_days[k])
            flow(lin, vk, lay.p, nu * float(vac.e_inf[k]))
            flow(lin, vk, svk, nu * (1.0 - float(vac.e_inf[k])))
            if omega > 0:
                flow(lin, svk, SW, omega)
            infect(vk, ev, 1.0)
            infect(svk, ev, 1.0 - float(bt[k]))
    return lin, gin


def initial_state(setup: Setup, lay: Layout) -> FloatArray:
    """Seed ``seed_fraction`` of every band in ``Eu``, ``prior_immunity`` in ``Ru``, the rest in ``S``."""
    seed = setup.params.seed_fraction
    pop = setup.pop
    x = np.zeros((lay.size, setup.n, N_BANDS))
    x[lay.eu] = seed * pop
    x[lay.ru] = setup.prior_immunity * pop
    x[S] = pop - x[lay.eu] - x[lay.ru]
    x[lay.qe] = x[lay.eu]
    x[lay.cinf] = x[lay.eu]
    return x.reshape(lay.size, -1)


@dataclass(frozen=True)
class Trajectory:
    """Daily cumulative outputs of one run; index 0 is the start of day 0.

    ``infections``/``deaths``: (days + 1, n, 16) cumulative (seed included);
    ``vaccinated``: (days, n, 16) people who started a course each day;
    ``doses_used``/``doses_unused``: (n, m) doses administered / not administrable (no eligible
    people left in the priority groups); ``states``: (days + 1, C, n, 16) when kept.
    """

    infections: FloatArray
    deaths: FloatArray
    vaccinated: FloatArray
    doses_used: FloatArray
    doses_unused: FloatArray
    layout: Layout
    states: FloatArray | None = None


class NegativeCompartmentError(AssertionError):
    """A compartment went negative: a bug in the engine, never a user error."""


BLOCK_BYTES = 1_500_000
"""Bytes of one block's working set (the RK4 state, its three stages and the infection work array):
blocks hold as many participants as fit in this, so the working set stays in a core's L2 cache and the
cost per participant-day does not grow with the number of participants (or of scenarios stacked along
the participant axis). See :func:`block_size`."""


def block_size(lay: Layout) -> int:
    """Participants per block for layout ``lay``: :data:`BLOCK_BYTES` over the bytes one participant
    needs in the time loop (four ``C × 16`` state arrays and the ``n_susceptible × 16`` work array),
    between 16 and 1024.

    >>> block_size(Layout(0)), block_size(Layout(2)), block_size(Layout(8))
    (217, 158, 87)
    """
    per = (4 * lay.size + lay.n_susceptible) * N_BANDS * 8
    return int(min(1024, max(16, BLOCK_BYTES // per)))


def _csr(mat: FloatArray) -> tuple[int, int, npt.NDArray[np.int32], npt.NDArray[np.int32], FloatArray]:
    a = sparse.csr_array(mat)
    return (int(a.shape[0]), int(a.shape[1]), a.indptr.astype(np.int32), a.indices.astype(np.int32),
            a.data.astype(np.float64))


try:  # y += A @ X for a CSR A and dense row-major X, without temporaries (SciPy's own kernel)
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - older/newer SciPy without the private kernel
    _csr_matvecs = None


def _spmm_add(a: tuple[int, int, npt.NDArray[np.int32], npt.NDArray[np.int32], FloatArray], x: FloatArray,
              out: FloatArray) -> None:
    """``out += A @ x`` in place (x: (cols, k), out: (rows, k), both C-contiguous)."""
    rows, cols, indptr, indices, data = a
    if _csr_matvecs is not None:
        _csr_matvecs(rows, cols, x.shape[1], indptr, indices, data, x.reshape(-1), out.reshape(-1))
        return
    for r in range(rows):  # pragma: no cover
        for j in range(indptr[r], indptr[r + 1]):
            out[r] += data[j] * x[indices[j]]


def simulate(
    setup: Setup,
    vaccines: Vaccines | None = None,
    *,
    keep_states: bool = False,
    block: int | None = None,
) -> Trajectory:
    """Run the model for ``setup.days`` days; ``vaccines=None`` is the no-vaccine run.

    Participants are independent, so they are integrated in blocks of ``block`` participants
    (default :func:`block_size`: a working set that stays in cache); every participant's result
    is the same, bit for bit, whatever the block size and whichever participants share its block
    (each one stops integrating when its own epidemic is over, see :data:`EXTINCT_SHARE`). So
    several scenarios can be stacked along the participant axis (``Setup.subset`` with repeated
    indices) and run in one call, or split over processes, with the results of separate runs.
    """
    n, days = setup.n, setup.days
    m = 0 if vaccines is None else vaccines.m
    lay = Layout(m)
    if vaccines is not None and vaccines.doses.shape[:2] != (n, m):
        raise InputError(f"doses shape {vaccines.doses.shape} does not match (participants, products) = {(n, m)}")
    c = lay.size
    out = Trajectory(
        infections=np.empty((days + 1, n, N_BANDS)),
        deaths=np.empty((days + 1, n, N_BANDS)),
        vaccinated=np.zeros((days, n, N_BANDS)),
        doses_used=np.zeros((n, m)),
        doses_unused=np.zeros((n, m)),
        layout=lay,
        states=np.empty((days + 1, c, n, N_BANDS)) if keep_states else None,
    )
    size = block_size(lay) if block is None else max(int(block), 1)
    for lo in range(0, n, size):
        _simulate_block(setup, vaccines, lay, slice(lo, min(n, lo + size)), out)
    out.deaths[...] *= setup.ifr[None]
    return out


EXTINCT_SHARE = 1e-7
"""A participant stops integrating once its latent + infectious people divided by ``1 − R_eff`` (a
bound on the infections still to come, up to the generation ratio) are below this share of its
population, with ``R_eff`` at the highest β still to come below 1 (see :func:`_extinct`); its
state then only changes by doses. The deaths left out are below about 1e-6 of the epidemic's own.
A block stops integrating when all its participants have stopped."""


def _extinct(x: FloatArray, lay: Layout, part: Setup, beta_max: FloatArray, inv_n: FloatArray,
             candidates: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """(n,) the ``candidates`` whose epidemic cannot grow again within the horizon.

    ``x`` holds the block's state; ``beta_max`` (n,) the largest β from now to the horizon. With
    no waning (the susceptible only shrink) and ``R_eff = β_max · infectious_days ·
    ρ(diag(s) M) < 1`` (``s`` the susceptible share per band: the next-generation matrix at the
    current state), infections can only decline geometrically, so the infections still to come
    are of the order of the latent + infectious divided by ``1 − R_eff``. Each participant's
    answer depends on its own state only."""
    n = part.n
    active = (x[lay.eu] + x[lay.iu] + x[lay.ev] + x[lay.iv]).reshape(n, N_BANDS).sum(axis=1)
    limit = EXTINCT_SHARE * part.pop.sum(axis=1)
    done = np.zeros(n, dtype=np.bool_)
    idx = np.flatnonzero(candidates & (active <= limit))
    if idx.size == 0:
        return done
    sus = (x[: lay.n_susceptible].sum(axis=0) * inv_n).reshape(n, N_BANDS)[idx]
    r_eff = beta_max[idx] * part.params.infectious_days * spectral_radius(sus[:, :, None] * part.contacts[idx])
    done[idx] = (r_eff < 1.0) & (active[idx] <= limit[idx] * (1.0 - np.minimum(r_eff, 1.0)))
    return done


def _simulate_block(setup: Setup, vaccines: Vaccines | None, lay: Layout, sl: slice, out: Trajectory) -> None:
    """Integrate participants ``sl``, writing their slices of ``out`` (deaths still IFR-free).

    Products with no doses in the block get no compartments (unless states are kept), and each
    participant stops integrating once its epidemic is over (:func:`_extinct`): the deaths still
    due among its few latent/infectious are booked then, and from then on its state only changes by
    doses, which move people between compartments nobody can infect any more. The block stops
    integrating when all its participants have stopped."""
    params = setup.params
    idx = np.arange(setup.n)[sl]
    part = setup if idx.size == setup.n else setup.subset(idx)
    full_m = lay.m
    prod = np.arange(full_m)
    doses = None if vaccines is None else vaccines.doses[sl]
    if vaccines is not None and doses is not None and out.states is None:
        prod = np.flatnonzero(doses.any(axis=(0, 2)))
        if prod.size < full_m:
            doses = doses[:, prod]
            vaccines = None if prod.size == 0 else Vaccines(
                tuple(vaccines.products[k] for k in prod), doses, vaccines.doses_per_course[prod],
                vaccines.e_inf[prod], vaccines.e_sev[prod], vaccines.delay_days[prod])
            lay = Layout(int(prod.size))
    n, days, m = part.n, part.days, lay.m
    lin, gin = rate_matrices(lay, vaccines, params)
    ns = lay.n_susceptible
    h = 1.0 / params.steps_per_day
    # RK4 stages as x + c·f(y) for c = h/2, h, h/6: L is scaled by c, λ by c through β
    scales = (0.5 * h, h, h / 6.0)
    lin_c = [_csr(lin * s) for s in scales]
    gin_c = _csr(np.ascontiguousarray(gin[:, :ns]))
    c = lay.size
    x = initial_state(part, lay)
    inv_n = 1.0 / np.where(part.pop > 0, part.pop, 1.0).reshape(-1)
    mats = part.contacts * inv_n.reshape(n, 1, N_BANDS)  # λ = β · (M diag(1/N)) I
    rank = priority_groups(params.priority)
    onehot = (rank[:, None] == np.arange(int(rank.max()) + 1)[None, :]).astype(np.float64)
    uptake = params.uptake_by_band()
    room = None if uptake is None else uptake[None, :] * part.pop  # people each band may still vaccinate
    tol = -1e-9 * float(part.pop.max())
    iu, iv = lay.iu, lay.iv

    infections, deaths_w, vaccinated = out.infections[:, sl], out.deaths[:, sl], out.vaccinated[:, sl]
    used = np.zeros((n, m))
    unused = np.zeros((n, m))
    states = out.states
    can_stop = states is None and params.waning_days is None and params.natural_immunity_days is None
    beta_max = np.maximum.accumulate(part.beta[::-1], axis=0)[::-1]  # (days, n): largest β from day d on
    stopped = np.zeros(n, dtype=np.bool_)  # participants whose epidemic is over
    stopped_cols = np.empty(0, dtype=np.intp)
    infections[0] = x[lay.cinf].reshape(n, N_BANDS)
    deaths_w[0] = x[lay.dw].reshape(n, N_BANDS)
    if states is not None:
        states[0, :, sl] = x.reshape(c, n, N_BANDS)
    dose_days = np.zeros(days, dtype=np.bool_)
    starts = np.zeros((0, m, n))  # people starting a course, (days, m, n): contiguous per day
    if doses is not None and vaccines is not None:
        t_avail = min(days, doses.shape[2])
        dose_days[:t_avail] = doses[:, :, :t_avail].any(axis=(0, 1))
        starts = np.ascontiguousarray(doses[:, :, :t_avail].transpose(2, 1, 0)) / vaccines.doses_per_course[:, None]

    # preallocated work arrays: nothing is allocated inside the time loop
    width = n * N_BANDS
    inf = np.empty(width)
    lam = np.empty(width)
    lam3 = lam.reshape(n, N_BANDS, 1)
    inf3 = inf.reshape(n, N_BANDS, 1)
    work = np.empty((ns, width))
    t2 = np.empty_like(x)
    t3 = np.empty_like(x)
    t4 = np.empty_like(x)
    beta_c = np.empty((len(scales), n, N_BANDS))
    beta_flat = beta_c.reshape(len(scales), width)

    def rhs_add(y: FloatArray, dst: FloatArray, j: int) -> None:
        """``dst += scales[j] · f(y)``."""
        np.add(y[iu], y[iv], out=inf)
        np.matmul(mats, inf3, out=lam3)
        np.multiply(lam, beta_flat[j], out=lam)
        np.multiply(y[:ns], lam, out=work)
        _spmm_add(lin_c[j], y, dst)
        _spmm_add(gin_c, work, dst)

    third = 1.0 / 3.0
    for d in range(days):
        if dose_days[d] and vaccines is not None and doses is not None:
            people = starts[d]  # (m, n)
            ks = np.flatnonzero(people.any(axis=1))
            if ks.size:
                given, left = administer_products(x, lay, ks, people[ks], onehot, n, room=room)
                total = given.sum(axis=0)
                if room is not None:
                    room -= total
                    np.maximum(room, 0.0, out=room)
                vaccinated[d] += total
                course = vaccines.doses_per_course[ks]
                used[:, ks] += ((people[ks] - left) * course[:, None]).T
                unused[:, ks] += (left * course[:, None]).T
        if can_stop and d % 7 == 0 and d > 0 and not stopped.all():
            done = _extinct(x, lay, part, beta_max[d], inv_n, ~stopped)
            if done.any():
                # their epidemic is over: the deaths still due among the few latent/infectious are booked now
                cols = (np.flatnonzero(done)[:, None] * N_BANDS + np.arange(N_BANDS)[None, :]).reshape(-1)
                x[lay.dw, cols] += x[lay.qe, cols] + x[lay.qi, cols]
                x[lay.qe, cols] = 0.0
                x[lay.qi, cols] = 0.0
                stopped |= done
                stopped_cols = np.flatnonzero(np.repeat(stopped, N_BANDS))
        if not stopped.all():
            kept = x[:, stopped_cols] if stopped_cols.size else None
            for j, s in enumerate(scales):
                np.multiply(part.beta[d][:, None], s, out=beta_c[j])
            for _ in range(params.steps_per_day):
                # classical RK4 with the stages t2 = x + h/2 k1, t3 = x + h/2 k2, t4 = x + h k3:
                # x + h/6 (k1 + 2 k2 + 2 k3 + k4) = (t2 + 2 t3 + t4 − x) / 3 + h/6 k4
                np.copyto(t2, x)
                rhs_add(x, t2, 0)
                np.copyto(t3, x)
                rhs_add(t2, t3, 0)
                np.copyto(t4, x)
                rhs_add(t3, t4, 1)
                t2 += t3
                t2 += t3
                t2 += t4
                t2 -= x
                t2 *= third
                rhs_add(t4, t2, 2)
                x, t2 = t2, x
            if kept is not None:  # the stopped participants' states are where their epidemics ended
                x[:, stopped_cols] = kept
            if x[: lay.living].min() < tol:
                raise NegativeCompartmentError(f"negative compartment on day {d}: {x[: lay.living].min()}")
        infections[d + 1] = x[lay.cinf].reshape(n, N_BANDS)
        deaths_w[d + 1] = x[lay.dw].reshape(n, N_BANDS)
        if states is not None:
            states[d + 1, :, sl] = x.reshape(c, n, N_BANDS)
    out.doses_used[sl, prod] = used
    out.doses_unused[sl, prod] = unused


def administer(
    x: FloatArray,
    lay: Layout,
    k: int,
    people: FloatArray,
    rank: npt.NDArray[np.intp],
    n: int,
    *,
    room: FloatArray | None = None,
    onehot: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Start courses of product ``k`` for ``people`` (n,) in place on state ``x``; return (given (n, 16), left (n,)).

    ``room`` (n, 16): people each band may still vaccinate (maximum uptake); None: everyone eligible.
    ``onehot`` (16, groups): band → priority group of ``rank``, when the caller has it already.
    """
    sx = x[S].reshape(n, N_BANDS)
    rx = x[lay.ru].reshape(n, N_BANDS)
    elig = sx + rx
    avail = elig if room is None else np.minimum(elig, room)
    if onehot is None:
        onehot = (rank[:, None] == np.arange(int(rank.max()) + 1)[None, :]).astype(np.float64)
    gsum = avail @ onehot
    before = np.cumsum(gsum, axis=1) - gsum
    take = np.clip(people[:, None] - before, 0.0, gsum)
    frac_g = np.divide(take, gsum, out=np.zeros_like(take), where=gsum > 0)
    share = np.minimum(frac_g @ onehot.T, 1.0)  # of the available people in each band
    frac = share if room is None else share * np.divide(avail, elig, out=np.zeros_like(elig), where=elig > 0)
    ds = frac * sx
    dr = frac * rx
    sx -= ds
    rx -= dr
    x[int(lay.v.start) + k] += ds.reshape(-1)
    x[lay.rv] += dr.reshape(-1)
    given = ds + dr
    left = np.maximum(people - given.sum(axis=1), 0.0)
    return given, left


def administer_products(
    x: FloatArray,
    lay: Layout,
    ks: npt.NDArray[np.intp],
    people: FloatArray,
    onehot: FloatArray,
    n: int,
    *,
    room: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """:func:`administer` for several products at once: ``people`` (len(ks), n) start courses of
    products ``ks`` in this order (each one's people go down the priority queue where the one
    before stopped), in place on ``x``; return (given (len(ks), n, 16), left (len(ks), n)).

    Serving the products one after the other takes the first ``P_1``, then the next ``P_2``…
    people of the queue, so product ``k`` gets the queue's people between the cumulative totals
    ``P_1 + … + P_(k−1)`` and ``P_1 + … + P_k``: one pass for all products. ``onehot`` (16,
    groups): band → priority group (all zero for bands never vaccinated)."""
    sx = x[S].reshape(n, N_BANDS)
    rx = x[lay.ru].reshape(n, N_BANDS)
    elig = sx + rx
    avail = elig if room is None else np.minimum(elig, room)
    gsum = avail @ onehot  # (n, groups)
    before = np.cumsum(gsum, axis=1) - gsum
    upto = np.cumsum(people, axis=0)  # (K, n) people served by the first k products
    take = np.clip(upto[:, :, None] - before[None], 0.0, gsum[None])  # (K, n, groups)
    frac_g = np.divide(take, gsum[None], out=np.zeros_like(take), where=gsum[None] > 0)
    share = np.minimum(frac_g @ onehot.T, 1.0)  # (K, n, 16) of the available people, cumulative
    share[1:] -= share[:-1].copy()
    if room is not None:
        share *= np.divide(avail, elig, out=np.zeros_like(elig), where=elig > 0)[None]
    ds = share * sx[None]
    dr = share * rx[None]
    sx -= ds.sum(axis=0)
    rx -= dr.sum(axis=0)
    v0 = int(lay.v.start)
    for j, k in enumerate(ks):
        x[v0 + int(k)] += ds[j].reshape(-1)
    x[lay.rv] += dr.sum(axis=0).reshape(-1)
    given = ds + dr
    left = np.maximum(people - given.sum(axis=2), 0.0)
    return given, left
