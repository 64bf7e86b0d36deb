"""A reference solve of the engine's equations, one participant at a time, by ``scipy.integrate.solve_ivp``.

The right-hand side is written out compartment by compartment (not through the engine's
``L``/``G`` matrices), so agreement checks the matrix assembly as well as the integrator. The
daily vaccination pulse is the engine's own :func:`~dosewise.impact.vaccination.administer`;
``solve_ivp`` restarts after each day that has a pulse and runs straight through stretches of
days without one. Used by the tests and as the baseline of ``benchmarks/impact.py``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dosewise.impact.engine import SW, Layout, S, Setup, Vaccines, initial_state
from dosewise.impact.parameters import N_BANDS, priority_groups

FloatArray = npt.NDArray[np.float64]


def _rhs_factory(setup: Setup, p: int, vac: Vaccines | None, lay: Layout):  # type: ignore[no-untyped-def]
    params = setup.params
    sigma, gamma = 1.0 / params.latent_days, 1.0 / params.infectious_days
    omega = 0.0 if params.waning_days is None else 1.0 / params.waning_days
    kappa = 0.0 if params.natural_immunity_days is None else 1.0 / params.natural_immunity_days
    mat = setup.contacts[p]
    pop = setup.pop[p]
    m = lay.m
    bt = vac.e_breakthrough if vac is not None else np.zeros(0)
    EU, IU, EV, IV, RU, RV, P = lay.eu, lay.iu, lay.ev, lay.iv, lay.ru, lay.rv, lay.p

    def rhs(_t: float, y: FloatArray, beta: float) -> FloatArray:
        z = y.reshape(lay.size, N_BANDS)
        d = np.zeros_like(z)
        lam = beta * (mat @ ((z[IU] + z[IV]) / pop))
        inf_s, inf_sw = lam * z[S], lam * z[SW]
        d[S] -= inf_s
        d[SW] -= inf_sw
        d[EU] += inf_s - sigma * z[EU]
        d[IU] += sigma * z[EU] - gamma * z[IU]
        d[RU] += gamma * z[IU]
        new_v = inf_sw.copy()
        death_w = inf_s + inf_sw
        d[SW] += omega * z[P]
        d[P] -= omega * z[P]
        for k in range(m):
            vk, svk = int(lay.v.start) + k, int(lay.sv.start) + k
            nu = 1.0 / float(vac.delay_days[k])  # type: ignore[union-attr]
            e = float(vac.e_inf[k])  # type: ignore[union-attr]
            inf_v, inf_sv = lam * z[vk], lam * z[svk]
            d[vk] -= inf_v + nu * z[vk]
            d[P] += nu * e * z[vk]
            d[svk] += nu * (1.0 - e) * z[vk] - inf_sv - omega * z[svk]
            d[SW] += omega * z[svk]
            new_v += inf_v + inf_sv
            death_w += inf_v + (1.0 - bt[k]) * inf_sv
        d[EV] += new_v - sigma * z[EV]
        d[IV] += sigma * z[EV] - gamma * z[IV]
        d[RV] += gamma * z[IV]
        # natural immunity wanes: recovered unvaccinated → S, recovered vaccinated → Sw
        d[RU] -= kappa * z[RU]
        d[S] += kappa * z[RU]
        d[RV] -= kappa * z[RV]
        d[SW] += kappa * z[RV]
        d[lay.qe] += death_w - sigma * z[lay.qe]
        d[lay.qi] += sigma * z[lay.qe] - gamma * z[lay.qi]
        d[lay.dw] += gamma * z[lay.qi]
        d[lay.cinf] += new_v + inf_s
        return d.reshape(-1)

    return rhs


def solve_reference(
    setup: Setup, p: int, vaccines: Vaccines | None = None, *, rtol: float = 1e-8, method: str = "LSODA"
) -> FloatArray:
    """States at the start of each day, (days + 1, C, 16), for participant ``p`` alone."""
    from scipy.integrate import solve_ivp

    from dosewise.impact.engine import administer

    one = setup.subset([p])
    vac = None
    if vaccines is not None:
        vac = Vaccines(vaccines.products, vaccines.doses[p : p + 1], vaccines.doses_per_course, vaccines.e_inf,
                       vaccines.e_sev, vaccines.delay_days)
    lay = Layout(0 if vac is None else vac.m)
    rhs = _rhs_factory(one, 0, vac, lay)
    rank = priority_groups(setup.params.priority)
    days = setup.days
    x = initial_state(one, lay)
    out = np.empty((days + 1, lay.size, N_BANDS))
    out[0] = x.reshape(lay.size, N_BANDS)
    pulse = np.zeros(days, dtype=np.bool_)
    if vac is not None:
        t = min(days, vac.doses.shape[2])
        pulse[:t] = vac.doses[0, :, :t].any(axis=0)
    beta = one.beta[:, 0]
    uptake = setup.params.uptake_by_band()
    room = None if uptake is None else uptake[None, :] * one.pop
    atol = 1e-10 * float(one.pop.sum())
    d = 0
    while d < days:
        if pulse[d] and vac is not None:
            for k in range(vac.m):
                people = vac.doses[:, k, d] / vac.doses_per_course[k]
                if people.any():
                    given, _ = administer(x, lay, k, people, rank, 1, room=room)
                    if room is not None:
                        room = np.maximum(room - given, 0.0)
        end = d + 1
        while end < days and not pulse[end] and beta[end] == beta[d]:
            end += 1
        sol = solve_ivp(rhs, (d, end), x.reshape(-1), method=method, rtol=rtol, atol=atol,
                        t_eval=np.arange(d + 1, end + 1, dtype=np.float64), args=(float(beta[d]),))
        if not sol.success:
            raise RuntimeError(f"solve_ivp failed: {sol.message}")
        out[d + 1 : end + 1] = sol.y.T.reshape(end - d, lay.size, N_BANDS)
        x = sol.y[:, -1].reshape(lay.size, -1).copy()
        d = end
    return out
