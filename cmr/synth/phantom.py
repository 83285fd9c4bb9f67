"""A parametric beating-heart phantom in patient coordinates (DICOM LPS, millimetres).

The heart lives in its own frame: the LV apex is the origin, `w` points from apex to base along the long
axis, `s` points from the LV centre towards the septum/RV and `a` anteriorly within the short-axis plane.
Every structure is an analytic shape, so any image plane at any cardiac phase is rendered by evaluating the
shapes at the plane's pixel centres (no voxel volume is ever built), with a one-pixel ramp at every edge that
acts as partial-volume anti-aliasing.

Motion: an LV volume curve drives endocardial inward motion (regionally weighted, so infarcted territories are
hypokinetic), long-axis shortening with the apex fixed (the base descends), and wall thickening from local
myocardial area conservation. The contraction amplitude is solved numerically so the rendered LV and RV
ejection fractions equal the ground truth, and end-diastolic volumes equal the indexed volumes times BSA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from cmr.synth.tissues import TISSUE_ID
from cmr.synth.truth import StudyTruth

Sequence = Literal["cine", "lge"]
FloatArray = np.ndarray

# Fraction of the LV length that is the ellipsoidal apical cap; the rest is near-cylindrical ("bullet" LV).
_APICAL_CAP = 0.62
_AORTA_LENGTH = 60.0  # mm of aortic root and ascending aorta rendered above the valve
_LV_VOLUME_FACTOR = np.pi * (_APICAL_CAP * 2.0 / 3.0 + (1.0 - _APICAL_CAP))


def _unit(v: FloatArray) -> FloatArray:
    return v / np.linalg.norm(v)


def _ramp(signed_depth_mm: FloatArray, edge_mm: float) -> FloatArray:
    """Membership from a signed depth (positive inside): a linear one-edge-width ramp = partial volume."""
    return np.clip(signed_depth_mm / edge_mm + 0.5, 0.0, 1.0)


def _label(labels: NDArray[np.uint8] | None, membership: FloatArray, tissue: str) -> None:
    """Painter's order for the label map: a tissue claims the points where it makes up at least half."""
    if labels is not None:
        labels[membership >= 0.5] = TISSUE_ID[tissue]


def _angle_weight(phi: FloatArray, centre_deg: float, half_width_deg: float) -> FloatArray:
    """Smooth 0..1 weight of an angular sector (cosine taper), wrapping at +-180 degrees."""
    d = np.abs((phi - np.deg2rad(centre_deg) + np.pi) % (2 * np.pi) - np.pi)
    hw = np.deg2rad(half_width_deg)
    return np.where(d < hw, 0.5 * (1 + np.cos(np.pi * d / hw)), 0.0)


def _lv_profile(eta: FloatArray) -> FloatArray:
    """Radius profile of the LV along its normalised length (0 apex .. 1 base): ellipsoid cap, then cylinder."""
    e = np.clip(eta / _APICAL_CAP, 0.0, 1.0)
    return np.sqrt(np.clip(e * (2.0 - e), 0.0, 1.0))


@dataclass(frozen=True)
class CardiacCycle:
    """Normalised LV contraction curve delta(t) in [0, 1] (1 at end-systole), t as a fraction of RR."""

    t_es: float  # end-systole, fraction of RR
    e_over_a: float  # early vs atrial filling share (< 1 means impaired relaxation)

    def delta(self, t: FloatArray | float) -> FloatArray:
        t = np.asarray(t, dtype=np.float64) % 1.0
        systole = np.sin(0.5 * np.pi * np.clip(t / self.t_es, 0, 1)) ** 2
        early = self.e_over_a / (1.0 + self.e_over_a)  # fraction of filling before diastasis
        tf = (t - self.t_es) / (0.82 - self.t_es)
        rapid = 1.0 - early * np.sin(0.5 * np.pi * np.clip(tf / 0.45, 0, 1)) ** 2
        late = (1.0 - early) * (1.0 - np.sin(0.5 * np.pi * np.clip((t - 0.82) / 0.16, 0, 1)) ** 2)
        diastole = np.where(t < 0.82, rapid, late)
        return np.where(t <= self.t_es, systole, diastole)


@dataclass(frozen=True)
class PlanePoints:
    """Pixels of one image plane near the heart, in heart coordinates (float32 for speed)."""

    near: FloatArray  # bool mask over all pixels of the plane
    q: FloatArray  # patient coordinates of the near pixels
    x: FloatArray
    y: FloatArray
    h: FloatArray
    r: FloatArray
    phi: FloatArray
    dependent: FloatArray  # effusion distribution weight (more fluid posteriorly in a supine patient)


@dataclass(frozen=True)
class AnatomyVariation:
    """Shape freedoms beyond what the ground truth fixes. The defaults are the phantom `cmr synth` renders
    (studies stay identical); the segmentation training bank draws them (`sample`), so the network sees right
    ventricles that reach above the LV base into the outflow tract, as real basal slices show, papillary
    muscles of real size and position, RVs of other proportions, and dilated RVs (volume overload, pulmonary
    hypertension, ARVC: an RV larger than the LV that wraps round it and reaches the apex), which the ground
    truth's diseases seldom give."""

    rvot_mm: float = 0.0  # how far the anterior RV (outflow tract) reaches above the LV base plane
    papillary_mm: float = 4.5  # end-diastolic radius of each papillary muscle
    papillary_offset: float = 0.62  # their distance from the LV axis, as a fraction of the cavity radius
    rv_aspect: float = 1.0  # anterior-posterior vs septal-lateral extent of the RV
    rv_volume_scale: float = 1.0  # the RV's end-diastolic volume, as a multiple of the truth's RVEDV
    rv_length_scale: float = 1.0  # the RV's apex-to-base reach, as a multiple of its drawn length (<= the LV's)

    # Share of sampled hearts with a dilated RV, and the range of their RV volume multiple.
    DILATED_RV_FRACTION: ClassVar[float] = 0.4
    DILATED_RV_SCALE: ClassVar[tuple[float, float]] = (1.3, 2.8)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> AnatomyVariation:
        kw = dict(rvot_mm=float(rng.uniform(0.0, 22.0)), papillary_mm=float(rng.uniform(3.5, 7.5)),
                  papillary_offset=float(rng.uniform(0.5, 0.78)), rv_aspect=float(rng.uniform(0.8, 1.25)))
        # Drawn after the fields above, so those keep the values of banks drawn before these existed.
        if rng.uniform() < cls.DILATED_RV_FRACTION:
            lo, hi = np.log(cls.DILATED_RV_SCALE[0]), np.log(cls.DILATED_RV_SCALE[1])
            kw.update(rv_volume_scale=float(np.exp(rng.uniform(lo, hi))), rv_length_scale=float(rng.uniform(1.05, 1.25)))
        else:
            kw.update(rv_volume_scale=float(rng.uniform(0.85, 1.15)), rv_length_scale=float(rng.uniform(0.95, 1.1)))
        return cls(**kw)


class HeartPhantom:
    """The heart and thorax of one synthetic patient, renderable at any plane and phase."""

    def __init__(self, truth: StudyTruth, rng: np.random.Generator, variation: AnatomyVariation | None = None) -> None:
        self.truth = truth
        self.variation = variation or AnatomyVariation()
        self._memo_phi: FloatArray | None = None
        self._memo: dict[tuple[float, float], FloatArray] = {}
        self._build_frame(rng)
        self._build_lv(truth, rng)
        self._build_rv(truth, rng)
        self._build_other(truth, rng)
        self._build_tissue_texture(rng)

    # ----------------------------------------------------------------------------------------- geometry
    def _build_frame(self, rng: np.random.Generator) -> None:
        jitter = rng.normal(0, 0.12, 3)
        u = _unit(np.array([0.55, -0.45, -0.70]) + jitter)  # base -> apex in LPS
        self.w = -u  # apex -> base
        s0 = np.array([-0.72, -0.62, 0.12])  # RV side: patient right and anterior
        self.s = _unit(s0 - (s0 @ u) * u)
        a0 = np.array([0.0, -1.0, 0.15])
        a1 = a0 - (a0 @ u) * u - (a0 @ self.s) * self.s
        self.a = _unit(a1)
        self.base_centre_ed = np.array([8.0, -22.0, 18.0]) + rng.normal(0, 6, 3)

    def _build_lv(self, t: StudyTruth, rng: np.random.Generator) -> None:
        edv_mm3 = t.lvedvi * t.bsa * 1000.0
        # Dilated ventricles are more spherical: length/radius falls as the indexed volume grows.
        k = float(np.clip(3.3 - 0.011 * max(0.0, t.lvedvi - 80.0) + rng.normal(0, 0.12), 2.1, 3.7))
        self.lv_a = float((edv_mm3 / (_LV_VOLUME_FACTOR * k)) ** (1.0 / 3.0))  # basal endocardial radius
        self.lv_c = k * self.lv_a  # apex-to-base endocardial length at end-diastole
        self.apex = self.base_centre_ed - self.lv_c * self.w
        self.wall_sep = t.lv_septal_wall_mm
        self.wall_lat = t.lv_lateral_wall_mm
        self.wall_apex = max(4.0, 0.75 * min(t.lv_septal_wall_mm, t.lv_lateral_wall_mm))
        self.hyp_pattern = t.hypertrophy_pattern
        self.cycle = CardiacCycle(
            t_es=float(np.clip(0.36 - 0.0012 * (t.heart_rate - 65) + rng.normal(0, 0.01), 0.28, 0.42)),
            e_over_a=0.6 if t.disease in ("hcm", "amyloidosis") or t.age > 65 else 2.2,
        )
        # Long-axis shortening per unit of contraction amplitude: ~15% at a normal amplitude (MAPSE ~13 mm);
        # it falls with the amplitude in dysfunctional ventricles, and is disproportionately low in amyloid.
        self.long_shortening = 0.38
        if t.disease == "amyloidosis":
            self.long_shortening *= 0.45
        self._wma_territory = t.regional_wma
        self._wma_depth = 0.85 if t.lge_pattern == "transmural" else 0.55
        # Chronic transmural scar thins the wall.
        self._thinning = 0.45 if (t.lge_pattern == "transmural" and t.disease == "ischemic") else 0.0
        self.lv_delta_max = self._solve_amplitude(self.lv_volume_at, self.lv_volume_at(0.0), 1.0 - t.lvef / 100.0)

    def _angle(self, phi: FloatArray, centre_deg: float, half_width_deg: float) -> FloatArray:
        # The same per-plane phi array is reused for every cardiac phase: memoise its angular weights.
        if self._memo_phi is not phi:
            self._memo_phi, self._memo = phi, {}
        key = (centre_deg, half_width_deg)
        if key not in self._memo:
            self._memo[key] = _angle_weight(phi, centre_deg, half_width_deg).astype(phi.dtype)
        return self._memo[key]

    def _territory_weight(self, phi: FloatArray, eta: FloatArray, territory: str) -> FloatArray:
        """Coronary territory (AHA 17-segment spirit) as a smooth weight over angle phi and level eta."""
        if territory == "LAD":
            return np.maximum(self._angle(phi, 45.0, 95.0), np.clip((0.38 - eta) / 0.15, 0, 1))
        if territory == "RCA":
            return self._angle(phi, -50.0, 70.0) * np.clip((eta - 0.18) / 0.15, 0, 1)
        if territory == "LCX":
            return self._angle(phi, -160.0, 70.0) * np.clip((eta - 0.18) / 0.15, 0, 1)
        if territory == "septal":
            return self._angle(phi, 0.0, 75.0) * np.clip((eta - 0.2) / 0.15, 0, 1)
        if territory == "lateral":
            return self._angle(phi, -165.0, 80.0) * np.clip((eta - 0.15) / 0.15, 0, 1)
        if territory == "global":
            return np.ones_like(phi)
        return np.zeros_like(phi)

    def _contraction(self, phi: FloatArray, eta: FloatArray) -> FloatArray:
        """Regional endocardial contraction weight g in [0, 1] (1 = normal, 0 = akinetic)."""
        if self._wma_territory in ("LAD", "RCA", "LCX"):
            return 1.0 - self._wma_depth * self._territory_weight(phi, eta, self._wma_territory)
        return np.ones_like(phi)

    def _wall_ed(self, phi: FloatArray, eta: FloatArray) -> FloatArray:
        """End-diastolic wall thickness (mm) by angle and level, with the hypertrophy pattern."""
        septal_w = self._angle(phi, 0.0, 180.0) ** 2  # ((1 + cos phi) / 2)^2
        base = self.wall_lat + (self.wall_sep - self.wall_lat) * septal_w
        if self.hyp_pattern == "asymmetric_septal":
            # Excess thickness concentrated basal-to-mid septum, tapering to the apex.
            excess = (self.wall_sep - self.wall_lat) * septal_w
            base = self.wall_lat + excess * np.clip((eta - 0.15) / 0.4, 0.25, 1.0)
        elif self.hyp_pattern == "apical":
            normal = 0.62 * self.wall_sep
            base = normal + (self.wall_sep - normal) * np.clip((0.55 - eta) / 0.3, 0, 1)
        if self._thinning > 0:
            base = base * (1.0 - self._thinning * self._territory_weight(phi, eta, self._wma_territory))
        return base

    def _lv_state(self, delta: float) -> tuple[float, float]:
        """(length, apical-wall thickness) of the LV at contraction delta."""
        c = self.lv_c * (1.0 - min(0.3, self.long_shortening * delta))
        return c, self.wall_apex * (1.0 + 0.5 * delta)

    def lv_volume_at(self, delta: float) -> float:
        """LV cavity volume (mm^3) at contraction delta, integrated on a polar grid."""
        phi = np.linspace(-np.pi, np.pi, 96, endpoint=False)[:, None]
        eta = (np.arange(64)[None, :] + 0.5) / 64.0
        c, _ = self._lv_state(delta)
        r = self.lv_a * (1.0 - self._contraction(phi, eta) * delta) * _lv_profile(eta)
        return float(np.mean(0.5 * r**2) * 2 * np.pi * c)

    @staticmethod
    def _solve_amplitude(volume_at: Callable[[float], float], v0: float, target_ratio: float) -> float:
        """Bisection for the contraction amplitude whose end-systolic/end-diastolic volume ratio hits target."""
        lo, hi = 0.0, 0.97
        for _ in range(32):
            mid = 0.5 * (lo + hi)
            if volume_at(mid) / v0 > target_ratio:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def _build_rv(self, t: StudyTruth, rng: np.random.Generator) -> None:
        # The RV is an ellipsoid beside the LV on the septal side, minus the LV; its crescent shape comes
        # from that subtraction.
        self.rv_len_frac = float(np.clip(rng.normal(0.82, 0.04), 0.72, 0.9))
        # RV free wall: thicker with LV hypertrophy and much thicker under pressure overload, thin in ARVC.
        rv_extra = {"pressure_overload": 3.0, "arvc": -0.8}.get(t.phenotype, 1.5 if t.hypertrophy_pattern != "none" else 0)
        self.rv_wall = float(np.clip(rng.normal(3.5, 0.5), 2.5, 5.0)) + rv_extra
        target_edv = t.rvedvi * t.bsa * 1000.0 * self.variation.rv_volume_scale
        lo, hi = 0.3, 3.0
        for _ in range(22):
            mid = 0.5 * (lo + hi)
            self.rv_scale = mid
            if self.rv_volume_at(0.0, 0.0) < target_edv:
                lo = mid
            else:
                hi = mid
        self.rv_scale = 0.5 * (lo + hi)
        # Both ventricles reach end-systole together; the septum moves with the LV, so solve with the LV there.
        self.rv_delta_max = self._solve_amplitude(
            lambda d: self.rv_volume_at(d, self.lv_delta_max), self.rv_volume_at(0.0, 0.0), 1.0 - t.rvef / 100.0
        )

    def _rv_axes(self, rv_delta: float, lv_delta: float) -> tuple[FloatArray, float, float, float, float]:
        """Centre (heart frame: x septal, y anterior, h) and semi-axes of the RV cavity ellipsoid.

        The ellipsoid is centred near the septal epicardium, so after subtracting the LV only a crescent
        wrapping the septal third of the LV remains, as in a real short-axis view.
        """
        c_lv, _ = self._lv_state(lv_delta)
        sc = self.rv_scale
        bs = 24.0 * sc * (1.0 - 0.6 * rv_delta) / np.sqrt(self.variation.rv_aspect)  # free wall moves in
        ba = 40.0 * sc * (1.0 - 0.2 * rv_delta) * np.sqrt(self.variation.rv_aspect)
        # The tricuspid annulus descends (TAPSE); a dilated RV may reach the LV apex, not beyond it.
        length = min(self.rv_len_frac * self.variation.rv_length_scale, 1.0) * self.lv_c * (1.0 - 0.25 * rv_delta)
        centre = np.array([self.lv_a + 0.8 * self.wall_sep, 3.0, c_lv])  # centred at the base plane
        return centre, bs, ba, length, c_lv

    def rv_volume_at(self, rv_delta: float, lv_delta: float) -> float:
        """RV cavity volume (mm^3) by grid integration of the same shapes that are rendered."""
        centre, bs, ba, length, c_lv = self._rv_axes(rv_delta, lv_delta)
        step = 2.5
        xs = np.arange(centre[0] - bs, centre[0] + bs, step) + step / 2
        ys = np.arange(centre[1] - ba, centre[1] + ba, step) + step / 2
        hs = np.arange(c_lv - length, c_lv, step) + step / 2
        X, Y, H = np.meshgrid(xs, ys, hs, indexing="ij")
        inside = self._rv_cavity_depth(X, Y, H, rv_delta, lv_delta) > 0
        return float(inside.sum()) * step**3

    def _build_other(self, t: StudyTruth, rng: np.random.Generator) -> None:
        la_max = t.lavi * t.bsa * 1000.0
        self.la_r_max = float((la_max / (4.0 / 3.0 * np.pi * 1.25)) ** (1 / 3))  # semi-axes r, r, 1.25 r
        self.la_r_min = self.la_r_max * (0.62 if t.lavi < 45 else 0.8) ** (1 / 3)
        self.ra_r = float(np.clip(rng.normal(21.0, 2.0), 16, 27)) * (1.1 if t.rvedvi > 115 else 1.0)
        self.ao_r = t.aortic_root_mm / 2.0
        self.effusion = t.effusion_mm
        self.epi_fat = float(np.clip(rng.normal(3.5, 1.5), 1.0, 8.0))
        # Thorax (patient frame): body ellipse, lung and liver placement vary a little between patients.
        self.body_ax = np.array([165.0, 115.0]) * rng.normal(1.0, 0.06, 2)
        self.fat_mm = float(np.clip(rng.normal(14, 6), 4, 35))
        self.diaphragm_z = float(self.apex[2] - rng.uniform(0, 8))
        # Off-resonance pattern for 3 T banding: a random smooth phase field per patient.
        self.offres_dir = _unit(rng.normal(0, 1, 3))
        self.offres_k = float(rng.uniform(0.012, 0.022))
        self.offres_phase0 = float(rng.uniform(0, 1))

    @property
    def heart_radius(self) -> float:
        """Radius around the heart centre outside which no heart structure (or effusion) can be."""
        reach = max(
            0.75 * self.lv_c + self.wall_apex * 1.5,  # apex
            0.25 * self.lv_c + 2.6 * self.la_r_max,  # far side of the left atrium
            0.25 * self.lv_c + _AORTA_LENGTH + self.ao_r,  # end of the ascending aorta segment
            self.lv_a + self.wall_sep + 2.2 * 24.0 * self.rv_scale,  # RV free wall
        )
        return reach + self.effusion * 1.2 + self.epi_fat + 8.0

    def _build_tissue_texture(self, rng: np.random.Generator) -> None:
        # Patchiness of LGE: a few random low-frequency harmonics over (phi, eta).
        self.lge_harmonics = [
            (int(rng.integers(1, 5)), float(rng.uniform(1, 4)), float(rng.uniform(0, 2 * np.pi)),
             float(rng.uniform(0.3, 1.0)))
            for _ in range(4)
        ]

    # -------------------------------------------------------------------------------- frame conversion
    def to_heart(self, points: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        rel = points - self.apex
        return rel @ self.s, rel @ self.a, rel @ self.w

    # --------------------------------------------------------------------------------- shape functions
    def _lv_surfaces(
        self, phi: FloatArray, h: FloatArray, delta: float
    ) -> tuple[FloatArray, FloatArray, FloatArray, float]:
        """Endocardial and epicardial radius at each point's angle and level, plus eta and LV length."""
        c, w_ap = self._lv_state(delta)
        eta = h / c
        g = self._contraction(phi, eta)
        r_endo = self.lv_a * (1.0 - g * delta) * _lv_profile(eta)
        w_ed = self._wall_ed(phi, eta)
        # Thickening from local area conservation of a ring at mid-cavity radius, scaled by the regional
        # contraction (an akinetic segment does not thicken).
        ri_ed = self.lv_a
        ri = self.lv_a * (1.0 - g * delta)
        area = ((ri_ed + w_ed) ** 2 - ri_ed**2) * (self.lv_c / c)
        w_t = np.sqrt(ri**2 + area) - ri
        w = w_ed + (w_t - w_ed) * g
        eta_e = (h + w_ap) / (c + w_ap)
        r_epi = (self.lv_a * (1.0 - g * delta) + w) * _lv_profile(eta_e)
        return r_endo, r_epi, eta, c

    def _rv_cavity_depth(
        self, x: FloatArray, y: FloatArray, h: FloatArray, rv_delta: float, lv_delta: float, grow: float = 0.0,
        r_epi: FloatArray | None = None,
    ) -> FloatArray:
        """Signed depth (mm, positive inside) of the RV cavity (or of it grown by `grow` mm)."""
        centre, bs, ba, length, c_lv = self._rv_axes(rv_delta, lv_delta)
        dx, dy, dh = x - centre[0], y - centre[1], h - centre[2]
        rho = np.sqrt((dx / (bs + grow)) ** 2 + (dy / (ba + grow)) ** 2 + (dh / (length + grow)) ** 2)
        depth = (1.0 - rho) * (min(bs, ba) + grow)
        # Cut at the base plane, where the RA takes over; the anterior part (outflow tract) may reach higher.
        top = c_lv + grow + 2.0
        if self.variation.rvot_mm > 0.0:
            top = top + self.variation.rvot_mm * np.clip((y - centre[1]) / max(ba, 1e-3) + 0.2, 0.0, 1.0)
        depth = np.minimum(depth, top - h)
        if grow > 0.0:
            return depth
        # Subtract the LV (epicardium plus septum): the crescent.
        r = np.hypot(x, y)
        if r_epi is None:
            _, r_epi, _, _ = self._lv_surfaces(np.arctan2(y, x), np.clip(h, 0, None), lv_delta)
        return np.minimum(depth, r - r_epi - 0.5)

    @staticmethod
    def _ellipsoid_depth(
        x: FloatArray, y: FloatArray, h: FloatArray, centre: tuple[float, float, float], axes: tuple[float, float, float]
    ) -> FloatArray:
        """Signed depth (mm, approximate) of an ellipsoid aligned with the heart frame."""
        rho = np.sqrt(((x - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2
                      + ((h - centre[2]) / axes[2]) ** 2)
        return (1.0 - rho) * min(axes)

    def _atria(self, delta_lv: float, t_frac: float) -> tuple[tuple[float, float, float], float, tuple[float, float, float], float]:
        """Centres (heart frame) and radii of the left and right atria at this phase."""
        c_lv, _ = self._lv_state(delta_lv)
        # LA fills during ventricular systole: its volume follows the LV contraction curve.
        la_r = self.la_r_min + (self.la_r_max - self.la_r_min) * float(self.cycle.delta(t_frac))
        la_c = (-6.0, -10.0, c_lv + 0.95 * la_r)
        ra_c = (self.lv_a + 24.0, -4.0, c_lv + 0.9 * self.ra_r)
        return la_c, la_r, ra_c, self.ra_r

    def _aorta_depth(self, x: FloatArray, y: FloatArray, h: FloatArray, delta_lv: float) -> FloatArray:
        """Signed depth of the aortic root and ascending aorta: a tube with a sinus bulb."""
        c_lv, _ = self._lv_state(delta_lv)
        d_ao = _unit(np.array([0.55, 0.85, 0.0]))  # anteroseptal, in heart-frame (s, a, w) components
        valve = np.array([0.0, 0.0, c_lv - 4.0]) + d_ao * (0.45 * self.lv_a)
        sup = np.array([0.0, -0.2, 1.0]) @ np.stack([self.s, self.a, self.w]).T  # patient superior, heart frame
        up = _unit(np.array([0.0, 0.0, 0.75]) + 0.45 * sup + np.array([0.2, 0.0, 0.0]))
        rx, ry, rh = x - valve[0], y - valve[1], h - valve[2]
        along_raw = rx * up[0] + ry * up[1] + rh * up[2]
        tau = np.clip(along_raw, 0.0, _AORTA_LENGTH)
        radial = np.sqrt(np.maximum(rx * rx + ry * ry + rh * rh - 2 * tau * along_raw + tau * tau, 0.0))
        bulb = np.exp(-(((tau - 16.0) / 11.0) ** 2))
        radius = self.ao_r * (0.82 + 0.18 * bulb)
        along = np.minimum(along_raw + 2.0, _AORTA_LENGTH - along_raw)
        return np.minimum(radius - radial, along)

    # ------------------------------------------------------------------------------------------ render
    def background(self, p: FloatArray, contrast: dict[str, float], edge_mm: float,
                   labels: NDArray[np.uint8] | None = None) -> FloatArray:
        """Static thorax: body, fat, lungs, liver, spine, descending aorta. Independent of phase.

        `labels` (uint8, one per point, zeros = air) receives the tissue id of every point (cmr.synth.tissues)."""
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        ax, ay = self.body_ax
        rho = np.sqrt((x / ax) ** 2 + (y / ay) ** 2)
        scale = float(min(ax, ay))
        img = np.zeros(len(p), dtype=np.float32)
        layers: list[tuple[FloatArray, str, str]] = [
            ((1.0 - rho) * scale, "fat", "subcutaneous_fat"),
            ((1.0 - rho) * scale - self.fat_mm, "muscle", "muscle"),
            ((1.0 - rho) * scale - self.fat_mm - 12.0, "tissue", "soft_tissue"),
        ]
        for depth, tissue, label in layers:
            m = _ramp(depth, edge_mm)
            img = img * (1 - m) + m * contrast[tissue]
            _label(labels, m, label)
        # Lungs: above the diaphragm, lateral and posterior to the heart.
        above = np.clip((z - self.diaphragm_z) / 25.0, 0, 1)
        for cx in (88.0, -82.0):
            d = np.sqrt(((x - cx) / 62.0) ** 2 + ((y - 18.0) / 82.0) ** 2)
            m = _ramp((1.0 - d) * 62.0, edge_mm) * above
            img = img * (1 - m) + m * contrast["lung"]
            _label(labels, m, "lung")
        # Liver under the right hemidiaphragm.
        liver = _ramp(np.minimum((self.diaphragm_z + 12.0 - 0.002 * (x + 40.0) ** 2) - z,
                                 (1.0 - np.sqrt(((x + 35.0) / 120.0) ** 2 + ((y - 10.0) / 95.0) ** 2)) * 95.0),
                      edge_mm)
        img = img * (1 - liver) + liver * contrast["liver"]
        _label(labels, liver, "liver")
        # Spine and descending aorta run cranio-caudally.
        for cx, cy, r, tissue, label in ((0.0, 82.0, 19.0, "bone", "bone"),
                                         (26.0, 56.0, 12.5, "blood", "descending_aorta")):
            m = _ramp(r - np.hypot(x - cx, y - cy), edge_mm)
            img = img * (1 - m) + m * contrast[tissue]
            _label(labels, m, label)
        return img

    def prepare(self, p: FloatArray) -> "PlanePoints":
        """Phase-independent geometry of a plane's pixels (the apex is fixed, so heart coordinates are too)."""
        centre = self.apex + self.w * (0.75 * self.lv_c)
        near = np.linalg.norm(p - centre, axis=1) < self.heart_radius
        q = p[near].astype(np.float32)
        x, y, h = self.to_heart(q)
        x, y, h = x.astype(np.float32), y.astype(np.float32), h.astype(np.float32)
        dependent = np.clip(0.6 + 0.4 * (q[:, 1] - centre[1]) / 60.0, 0.3, 1.2).astype(np.float32)
        return PlanePoints(near, q, x, y, h, np.hypot(x, y), np.arctan2(y, x), dependent)

    def paint_heart(
        self,
        img: FloatArray,
        pp: "PlanePoints",
        t_frac: float,
        sequence: Sequence,
        contrast: dict[str, float],
        edge_mm: float,
        labels: NDArray[np.uint8] | None = None,
    ) -> None:
        """Composite the heart (pericardium, walls, cavities, great vessels, scar) onto img in place.

        `labels` (the plane's tissue ids after `background`) is updated in place the same way."""
        if not pp.near.any():
            return
        delta_lv = float(self.cycle.delta(t_frac)) * self.lv_delta_max
        delta_rv = float(self.cycle.delta(t_frac)) * self.rv_delta_max
        near, q, x, y, h, r, phi = pp.near, pp.q, pp.x, pp.y, pp.h, pp.r, pp.phi
        hc = np.clip(h, 0.0, None)
        r_endo, r_epi, eta, c_lv = self._lv_surfaces(phi, hc, delta_lv)
        below_base = c_lv - h  # positive below the LV base plane
        apex_depth = h + self._lv_state(delta_lv)[1]
        lv_epi = np.minimum(np.minimum(r_epi - r, below_base + 1.0), apex_depth)
        lv_cav = np.minimum(np.minimum(r_endo - r, below_base), h)
        rv_cav = self._rv_cavity_depth(x, y, h, delta_rv, delta_lv, r_epi=r_epi)
        rv_outer = self._rv_cavity_depth(x, y, h, delta_rv, delta_lv, grow=self.rv_wall)
        la_c, la_r, ra_c, ra_r = self._atria(delta_lv, t_frac)
        la = self._ellipsoid_depth(x, y, h, la_c, (la_r, la_r, 1.25 * la_r))
        ra = self._ellipsoid_depth(x, y, h, ra_c, (ra_r, ra_r, 1.2 * ra_r))
        ao = self._aorta_depth(x, y, h, delta_lv)
        heart_outer = np.maximum.reduce([lv_epi, rv_outer, la + 2.5, ra + 2.5, ao + 2.0])

        # Pericardial effusion collects more posteriorly/dependently (patient supine, +y posterior).
        eff = self.effusion * pp.dependent
        sac = heart_outer + eff
        acc = img[near]
        lab = None if labels is None else labels[near]
        layers: list[tuple[FloatArray, str, str]] = [
            (sac + 1.5 + self.epi_fat, "fat", "pericardial_fat"),
            (sac + 1.5, "pericardium", "pericardium"),
            (sac, "fluid", "effusion") if self.effusion > 0.5 else (sac, "fat", "pericardial_fat"),
            (heart_outer, "fat", "epicardial_fat"),  # fat in the grooves
        ]
        for depth, tissue, label in layers:
            m = _ramp(depth, edge_mm)
            acc = acc * (1 - m) + m * contrast[tissue]
            _label(lab, m, label)

        # Myocardium (LV, RV free wall, thin atrial walls and aortic wall), then blood pools.
        myo_signal = np.full(len(q), contrast["myo"], dtype=np.float32)
        if sequence == "lge":
            myo_signal = myo_signal + self._scar(phi, eta, r, r_endo, r_epi) * (contrast["scar"] - contrast["myo"])
        walls = (rv_outer, la + 2.0, ra + 2.0, ao + 1.5, lv_epi)
        for depth in walls:
            m = _ramp(depth, edge_mm)
            acc = acc * (1 - m) + m * myo_signal
        if lab is not None:
            # The RV wall is grown from the RV cavity without subtracting the LV, so it covers the septum; all
            # walls share one signal, but the septum is LV myocardium: the LV wall is labelled last.
            for depth, label in zip(walls, ("rv_myocardium", "la_wall", "ra_wall", "aortic_wall", "lv_myocardium")):
                _label(lab, _ramp(depth, edge_mm), label)
        blood = contrast["blood"]
        for depth, label in ((lv_cav, "lv_blood"), (rv_cav, "rv_blood"), (la, "la_blood"), (ra, "ra_blood"),
                             (ao, "aortic_blood")):
            m = _ramp(depth, edge_mm)
            acc = acc * (1 - m) + m * blood
            _label(lab, m, label)
        # Papillary muscles: two myocardial columns inside the LV cavity (anterolateral, posteromedial).
        v = self.variation
        for ang in (-2.35, 2.6):
            px = np.cos(ang) * v.papillary_offset * r_endo
            py = np.sin(ang) * v.papillary_offset * r_endo
            rad = v.papillary_mm * (1.0 + 0.6 * delta_lv) * np.clip((eta - 0.15) / 0.1, 0, 1) * np.clip((0.72 - eta) / 0.1, 0, 1)
            m = _ramp(rad - np.hypot(x - px, y - py), edge_mm) * (lv_cav > 0)
            acc = acc * (1 - m) + m * myo_signal
            _label(lab, m, "papillary_muscle")
        img[near] = acc
        if labels is not None and lab is not None:
            labels[near] = lab

    def _scar(self, phi: FloatArray, eta: FloatArray, r: FloatArray, r_endo: FloatArray, r_epi: FloatArray) -> FloatArray:
        """Scar fraction 0..1 of each myocardial point for the LGE pattern of the ground truth."""
        t = self.truth
        if t.lge_pattern == "none":
            return np.zeros_like(r)
        depth = np.clip((r - r_endo) / np.maximum(r_epi - r_endo, 1e-3), 0.0, 1.0)  # 0 endo .. 1 epi
        patch = np.zeros_like(phi)
        for k_phi, k_eta, ph, amp in self.lge_harmonics:
            patch += amp * np.cos(k_phi * phi + k_eta * 2 * np.pi * eta + ph)
        patch = 0.5 + 0.5 * np.tanh(patch)
        ext = t.lge_extent
        terr = self._territory_weight(phi, eta, t.lge_territory)
        if t.lge_pattern == "subendocardial":
            band = depth < 0.18 + 0.32 * ext
            return (terr > 0.3) * band * 1.0
        if t.lge_pattern == "transmural":
            band = depth < 0.55 + 0.45 * ext + 0.05
            return (terr > 0.25) * band * 1.0
        if t.lge_pattern == "midwall":
            band = (depth > 0.3) & (depth < 0.72)
            return (terr > 0.35) * band * (patch > 0.5 - 0.4 * ext) * 0.9
        if t.lge_pattern == "subepicardial":
            band = depth > 1.0 - (0.25 + 0.35 * ext)
            return (terr > 0.3) * band * (patch > 0.45 - 0.4 * ext) * 0.95
        if t.lge_pattern == "diffuse_subendocardial":
            band = depth < 0.3 + 0.3 * ext
            return band * (0.55 + 0.35 * patch)
        raise ValueError(f"unknown LGE pattern {t.lge_pattern!r}")

    def offresonance_phase(self, points: FloatArray) -> FloatArray:
        """Smooth off-resonance phase (cycles) used for 3 T SSFP banding: gradient plus a bump at the heart."""
        rel = points - (self.apex + self.w * 0.6 * self.lv_c)
        bump = 0.9 * np.exp(-np.sum((rel + 40.0 * self.a) ** 2, axis=1) / (2 * 45.0**2))
        return self.offres_phase0 + self.offres_k * (rel @ self.offres_dir) + bump

    # ---------------------------------------------------------------------------------- measurements
    def lv_volumes_ml(self) -> tuple[float, float]:
        """(EDV, ESV) in mL of the rendered LV cavity."""
        return self.lv_volume_at(0.0) / 1000.0, self.lv_volume_at(self.lv_delta_max) / 1000.0

    def rv_volumes_ml(self) -> tuple[float, float]:
        """(EDV, ESV) in mL of the rendered RV cavity."""
        return (self.rv_volume_at(0.0, 0.0) / 1000.0,
                self.rv_volume_at(self.rv_delta_max, self.lv_delta_max) / 1000.0)

    def lv_length(self, t_frac: float) -> float:
        return self._lv_state(float(self.cycle.delta(t_frac)) * self.lv_delta_max)[0]
