"""Quark and gluon jets from Pythia 8, clustered with FastJet (needs the ``[sim]`` extra).

The recipe is the one of the widely used Pythia 8 quark/gluon sample of Komiske, Metodiev
and Thaler (energyflow ``qg_jets``, arXiv:1810.05165): pp collisions at 14 TeV,
``qg -> Z(->nu nu) + (u, d, s)`` for quark jets and ``q qbar -> Z(->nu nu) + g`` for gluon
jets (pure Z, no photon), default tune with hadronisation and multiple parton
interactions on. Final-state visible particles (neutrinos excluded) are clustered with
anti-kT R = 0.4; the leading jet is kept if ``500 < pT < 550 GeV`` and ``|y| < 1.7``.

Quark jets are light-flavour only, like the energyflow Pythia 8.226 sample (its
``with_bc=False`` files): events whose outgoing quark is c or b are rejected.

Randomness: every Pythia instance is initialised with the same seed, then re-seeded
(``Rndm::init``) at the start of each block of jets with a seed derived from the user's
seed, the class and the block index. Pythia keeps no other state between events
(``PhaseSpace:increaseMaximum`` is off), so a block's jets depend only on these three
numbers, never on which process generates it or what it generated before; the first k
jets of a block are the same whatever the block's length. The detector emulation of
each jet has its own generator, seeded from (seed, class, block, jet).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from graphevent.errors import ConfigError
from graphevent.simulate.detector import ParticleBatch, wrap_phi

CLASSES = ("quark", "gluon")

#: The hard process that makes each class.
PROCESSES = {
    "quark": "WeakBosonAndParton:qg2gmZq = on",
    "gluon": "WeakBosonAndParton:qqbar2gmZg = on",
}


@dataclass(frozen=True)
class QGSettings:
    """Generator-level choices.

    Args:
        ecm: centre-of-mass energy in GeV.
        pthat_min: lower cut on the hard process pT (GeV). Jets can be harder than their
            parton (initial-state radiation, underlying event), so a cut near the window
            removes jets, more quark than gluon jets. In a run with a cut at 250 GeV (308
            quark, 251 gluon jets accepted), 17% / 6% of the quark / gluon jets came from
            pTHat < 450, 7% / 3% from pTHat < 400 and 2.3% / 0.8% from pTHat < 350. 350
            keeps the sample nearly unbiased at 40% of the speed of 450.
        jet_r: anti-kT radius.
        jet_pt_min, jet_pt_max: window on the leading jet pT (GeV).
        jet_rap_max: cut on the leading jet |rapidity|.
        quark_flavours: allowed |PDG id| of the outgoing quark of quark events.
        veto_scale: parton-level veto (GeV; 0 turns it off). Most events (~95%) fail the
            jet cuts, and ~90% of their cost is spent below this scale, in the multiple
            parton interactions. Once the interleaved ISR/FSR/MPI evolution has fallen
            below ``veto_scale``, a Pythia ``UserHooks`` (:func:`parton_jet_veto`) clusters
            the partons made so far with anti-kT of radius ``veto_jet_r`` and Pythia drops
            the event unless one of these wide jets has pT > ``jet_pt_min - veto_pt_margin``
            and |y| < ``jet_rap_max + veto_rap_margin``. Later steps (emissions below the
            scale, MPI, hadronisation) rarely lift a jet that far; a check found 0 of 1,000
            accepted jets that the veto would have dropped (docs/simulation.md). About 2.6x
            faster.
        veto_pt_margin: GeV below the jet pT window that a wide parton-level jet may be.
        veto_rap_margin: added to ``jet_rap_max`` for the veto.
        veto_jet_r: anti-kT radius of the veto's parton-level jets (>= ``jet_r``, so that a
            hard splitting whose prongs end up in one R = 0.4 jet is caught).
    """

    ecm: float = 14000.0
    pthat_min: float = 350.0
    jet_r: float = 0.4
    jet_pt_min: float = 500.0
    jet_pt_max: float = 550.0
    jet_rap_max: float = 1.7
    quark_flavours: tuple[int, ...] = (1, 2, 3)
    veto_scale: float = 30.0
    veto_pt_margin: float = 50.0
    veto_rap_margin: float = 0.4
    veto_jet_r: float = 1.0

    def validate(self, where: str = "settings") -> None:
        if not 0 <= self.pthat_min < self.jet_pt_min:
            raise ConfigError(f"{where}.pthat_min: invalid value {self.pthat_min}; expected 0 <= pthat_min < jet_pt_min")
        if not 0 < self.jet_pt_min < self.jet_pt_max:
            raise ConfigError(f"{where}: jet pT window ({self.jet_pt_min}, {self.jet_pt_max}); expected 0 < min < max")
        if self.jet_r <= 0 or self.jet_rap_max <= 0:
            raise ConfigError(f"{where}: jet_r={self.jet_r}, jet_rap_max={self.jet_rap_max}; expected both > 0")
        if not self.quark_flavours or not set(self.quark_flavours) <= {1, 2, 3, 4, 5}:
            raise ConfigError(f"{where}.quark_flavours: invalid value {self.quark_flavours}; expected a subset of 1..5")
        if self.veto_scale < 0 or self.veto_pt_margin < 0 or self.veto_rap_margin < 0 or self.veto_jet_r < self.jet_r:
            raise ConfigError(
                f"{where}: veto_scale={self.veto_scale}, veto_pt_margin={self.veto_pt_margin}, "
                f"veto_rap_margin={self.veto_rap_margin}, veto_jet_r={self.veto_jet_r}; expected all >= 0 "
                f"(veto_scale 0 = no veto) and veto_jet_r >= jet_r"
            )


def pp_settings(ecm: float, process: list[str], init_seed: int) -> list[str]:
    """The ``readString`` lines of a pp run at ``ecm`` GeV: beams, the ``process`` lines, then
    a fixed phase-space maximum, the seed and quiet output (every generator of graphevent)."""
    return [
        "Beams:idA = 2212",
        "Beams:idB = 2212",
        f"Beams:eCM = {ecm}",
        *process,
        "PhaseSpace:increaseMaximum = off",
        "Random:setSeed = on",
        f"Random:seed = {init_seed}",
        "Next:numberCount = 0",
        "Print:quiet = on",
    ]


def pythia_seed(*entropy: int) -> int:
    """A Pythia seed (1..900,000,000): a hash of ``entropy`` (e.g. seed, class, block)."""
    state = np.random.SeedSequence(list(entropy)).generate_state(1)[0]
    return int(state % 900_000_000) + 1


def pythia_settings(kind: str, settings: QGSettings, init_seed: int) -> list[str]:
    """The ``readString`` lines that configure Pythia for one class (``quark``/``gluon``)."""
    process = [PROCESSES[kind], "WeakZ0:gmZmode = 2", "23:onMode = off", "23:onIfAny = 12 14 16",
               f"PhaseSpace:pTHatMin = {settings.pthat_min}"]
    return pp_settings(settings.ecm, process, init_seed)


def configured_pythia(lines: list[str]):
    """A ``pythia8mc.Pythia`` (quiet at construction) that has read ``lines``, not yet initialised.

    Raises:
        RuntimeError: Pythia rejected a line (names it).
    """
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in lines:
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected the setting {line!r}")
    return pythia


def block_seed(seed: int, kind: str, block: int) -> int:
    """Pythia seed (1..900,000,000) of one block, a hash of (seed, class, block)."""
    return pythia_seed(seed, CLASSES.index(kind), block, 0)


def detector_rng(seed: int, kind: str, block: int, jet: int) -> np.random.Generator:
    """numpy generator of the detector emulation of one jet (jet ``jet`` of a block)."""
    return np.random.default_rng(np.random.SeedSequence([seed, CLASSES.index(kind), block, 1, jet]))


def versions() -> dict[str, str]:
    """Versions of the generator packages (for provenance)."""
    from importlib.metadata import version

    return {"pythia8mc": version("pythia8mc"), "fastjet": version("fastjet")}


@dataclass
class JetBlock:
    """The accepted jets of one block.

    Attributes:
        particles: every visible final-state particle of each accepted event.
        pt, eta, rap, phi, mass: ``(n,)`` float64 leading-jet kinematics.
        constituents: ``n`` arrays ``(m_i, 4)`` float64 of (pt, rapidity, phi, pid),
            pT-ordered, phi within pi of the jet axis (energyflow convention).
        parton: ``(n,)`` int64 PDG id of the outgoing hard parton.
        n_tried: Pythia events generated for this block and not dropped by the
            parton-level veto (accepted or not).
        n_vetoed: events dropped by the parton-level veto.
        n_would_veto: with ``veto="check"``: accepted jets the veto would have dropped.
        seconds: wall time spent.
    """

    particles: ParticleBatch
    pt: np.ndarray
    eta: np.ndarray
    rap: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    constituents: list[np.ndarray] = field(default_factory=list)
    parton: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    n_tried: int = 0
    n_vetoed: int = 0
    n_would_veto: int = 0
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.pt)


@contextlib.contextmanager
def _quiet_stdout():
    """Send file descriptor 1 to /dev/null: FastJet and fjcore print a banner there at first use."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


VetoMode = Literal["on", "off", "check"]


def parton_jet_veto(settings: QGSettings, record_only: bool = False):
    """A ``pythia8mc.UserHooks`` that drops events whose parton-level jets cannot pass the cuts.

    See ``QGSettings.veto_scale``. Pythia calls ``doVetoPT`` once per event, when the
    interleaved ISR/FSR/MPI evolution falls below the scale (``iPos`` 0-3); calls for
    resonance-decay showers (``iPos`` 4, 5) are ignored. With ``record_only`` the hook only
    records its decision (``would_veto``) and never vetoes: :meth:`JetGenerator.generate`
    then counts accepted jets that the veto would have lost, which measures its bias.
    Counters: ``vetoed`` (events dropped), ``checked`` (decisions made).
    """
    import fastjet
    import pythia8mc

    s = settings
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, s.veto_jet_r)
    pt_lo = s.jet_pt_min - s.veto_pt_margin
    rap_max = s.jet_rap_max + s.veto_rap_margin

    class PartonJetVeto(pythia8mc.UserHooks):
        def __init__(self) -> None:
            super().__init__()
            self.vetoed = 0
            self.checked = 0
            self.would_veto: bool | None = None

        def canVetoPT(self) -> bool:
            return True

        def scaleVetoPT(self) -> float:
            return s.veto_scale

        def doVetoPT(self, iPos: int, event) -> bool:
            if iPos > 3:
                return False
            partons = [
                fastjet.PseudoJet(q.px(), q.py(), q.pz(), q.e())
                for q in event
                if q.status() > 0 and q.idAbs() not in _INVISIBLE
            ]
            jets = fastjet.ClusterSequence(partons, jet_def).inclusive_jets(pt_lo) if partons else []
            # only the low side is cut: a jet can lose far more than its later emissions suggest
            # (out-of-cone radiation, recoil), and the events it would drop are few
            could_pass = any(abs(j.rap()) < rap_max for j in jets)
            self.checked += 1
            self.would_veto = not could_pass
            if record_only or could_pass:
                return False
            self.vetoed += 1
            return True

    return PartonJetVeto()


#: The Z and the neutrinos it decays to: invisible, never part of a jet.
_INVISIBLE = (12, 14, 16, 23)


class JetGenerator:
    """One Pythia instance for one class, plus the jet finder.

    Args:
        kind: ``quark`` or ``gluon``.
        settings: generator-level choices.
        init_seed: seed of ``Pythia::init`` (the same in every process).
        veto: ``on`` uses the parton-level veto of ``settings.veto_scale`` (if > 0), ``off``
            never, ``check`` records its decision without vetoing, to measure its bias
            (:attr:`JetBlock.n_would_veto`).
    """

    def __init__(self, kind: str, settings: QGSettings, init_seed: int = 1, veto: VetoMode = "on") -> None:
        import fastjet
        import pythia8mc

        self.kind = kind
        self.settings = settings
        self.pythia = configured_pythia(pythia_settings(kind, settings, init_seed))
        self._veto = None
        if settings.veto_scale > 0 and veto != "off":
            self._veto = parton_jet_veto(settings, record_only=veto == "check")
            self.pythia.setUserHooksPtr(self._veto)
        # Loose pre-selection with Pythia's built-in fjcore anti-kT (C++, ~0.7 ms/event);
        # FastJet then makes the exact selection on the survivors.
        self._slowjet = pythia8mc.SlowJet(-1, settings.jet_r, 0.8 * settings.jet_pt_min, 10.0, 2, 2)
        self._jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, settings.jet_r)
        self._fastjet = fastjet
        with _quiet_stdout():
            if not self.pythia.init():
                raise RuntimeError(f"Pythia initialisation failed for the {kind} process")
            # One warm-up event prints the jet finders' banners here; every block re-seeds
            # the generator, so it does not change any output.
            while not self.pythia.next():
                pass
            self._slowjet.analyze(self.pythia.event)
            fastjet.ClusterSequence([fastjet.PseudoJet(1.0, 0.0, 0.0, 1.0)], self._jet_def).inclusive_jets()

    def _outgoing_parton(self) -> int:
        process = self.pythia.process
        for i in range(process.size()):
            particle = process[i]
            if particle.status() == 23 and particle.idAbs() != 23:
                return particle.id()
        return 0

    def _prefilter(self) -> bool:
        s = self.settings
        sj = self._slowjet
        if not sj.analyze(self.pythia.event) or sj.sizeJet() == 0:
            return False
        return (s.jet_pt_min - 5.0 < sj.pT(0) < s.jet_pt_max + 5.0) and abs(sj.y(0)) < s.jet_rap_max + 0.1

    def generate(self, n_jets: int, seed: int) -> JetBlock:
        """Generate events until ``n_jets`` leading jets pass the cuts.

        Args:
            n_jets: jets to accept.
            seed: Pythia seed of this block (1..900,000,000), see :func:`block_seed`.
        """
        start = time.perf_counter()
        s = self.settings
        self.pythia.rndm.init(seed)
        event = self.pythia.event
        rows: list[np.ndarray] = []
        kin: list[tuple[float, float, float, float, float]] = []
        constituents: list[np.ndarray] = []
        partons: list[int] = []
        n_tried = failures = would_veto = 0
        vetoed_before = self._veto.vetoed if self._veto is not None else 0
        while len(kin) < n_jets:
            if self._veto is not None:
                self._veto.would_veto = None
            if not self.pythia.next():
                failures += 1
                if failures > 1000:
                    raise RuntimeError(f"Pythia failed to generate 1000 {self.kind} events in a row")
                continue
            failures = 0
            n_tried += 1
            parton = self._outgoing_parton()
            if self.kind == "quark" and abs(parton) not in s.quark_flavours:
                continue
            if not self._prefilter():
                continue
            parts = np.array(
                [(q.px(), q.py(), q.pz(), q.e(), q.id(), q.charge()) for q in event if q.isFinal() and q.isVisible()],
                dtype=np.float64,
            )
            jet = self._leading_jet(parts)
            if jet is None:
                continue
            (pt, eta, rap, phi, mass), members = jet
            kin.append((pt, eta, rap, phi, mass))
            would_veto += int(self._veto is not None and self._veto.would_veto is True)
            constituents.append(_constituent_array(parts[members], phi))
            partons.append(parton)
            rows.append(parts)
        particles = _particle_batch(rows)
        pt, eta, rap, phi, mass = (np.array(col, dtype=np.float64) for col in zip(*kin)) if kin else [np.zeros(0)] * 5
        return JetBlock(
            particles=particles,
            pt=pt,
            eta=eta,
            rap=rap,
            phi=phi,
            mass=mass,
            constituents=constituents,
            parton=np.array(partons, dtype=np.int64),
            n_tried=n_tried,
            n_vetoed=self._veto.vetoed - vetoed_before if self._veto is not None else 0,
            n_would_veto=would_veto,
            seconds=time.perf_counter() - start,
        )

    def _leading_jet(self, parts: np.ndarray):
        """FastJet anti-kT on ``parts`` (px, py, pz, e, ...); the leading jet if it passes the cuts."""
        fj = self._fastjet
        s = self.settings
        inputs = []
        for i, (px, py, pz, e) in enumerate(parts[:, :4].tolist()):
            pj = fj.PseudoJet(px, py, pz, e)
            pj.set_user_index(i)
            inputs.append(pj)
        sequence = fj.ClusterSequence(inputs, self._jet_def)
        jets = fj.sorted_by_pt(sequence.inclusive_jets(0.5 * s.jet_pt_min))
        if not jets:
            return None
        jet = jets[0]
        if not (s.jet_pt_min < jet.pt() < s.jet_pt_max and abs(jet.rap()) < s.jet_rap_max):
            return None
        members = np.array([c.user_index() for c in jet.constituents()], dtype=np.int64)
        kin = (jet.pt(), jet.eta(), jet.rap(), float(wrap_phi(jet.phi())), jet.m())
        return kin, members


def _constituent_array(parts: np.ndarray, jet_phi: float) -> np.ndarray:
    """(pt, rapidity, phi, pid) of the jet's particles, pT-ordered, phi within pi of the jet."""
    px, py, pz, e, pid = parts[:, 0], parts[:, 1], parts[:, 2], parts[:, 3], parts[:, 4]
    pt = np.hypot(px, py)
    rap = 0.5 * np.log((e + pz) / (e - pz))
    phi = jet_phi + wrap_phi(np.arctan2(py, px) - jet_phi)
    out = np.stack([pt, rap, phi, pid], axis=1)
    return out[np.argsort(-pt, kind="stable")]


def _particle_batch(rows: list[np.ndarray]) -> ParticleBatch:
    """Flatten per-event (px, py, pz, e, pid, charge) arrays into a :class:`ParticleBatch`."""
    if not rows:
        return ParticleBatch.from_arrays(event=[], pt=[], eta=[], phi=[], e=[], pid=[], charge=[])
    event = np.concatenate([np.full(len(r), k) for k, r in enumerate(rows)])
    a = np.concatenate(rows)
    pt = np.hypot(a[:, 0], a[:, 1])
    return ParticleBatch.from_arrays(
        event=event,
        pt=pt,
        eta=np.arcsinh(a[:, 2] / np.maximum(pt, 1e-12)),
        phi=np.arctan2(a[:, 1], a[:, 0]),
        e=a[:, 3],
        pid=np.rint(a[:, 4]),
        charge=a[:, 5],
    )
