"""The series a real CMR exam holds besides the cine and LGE the model reads, written into every synthetic study
so the loader is tested against them: scouts, TI scout, T1/T2 mapping, perfusion, phase-contrast flow, T2 STIR
black blood, the PSIR phase partner of the LGE, a repeated ("_RPT") and a real-time cine, derived and
secondary-capture images. Each is labelled as its vendor labels it (SeriesDescription, ProtocolName, ImageType,
SequenceName, ScanningSequence, SequenceVariant, InversionTime, EchoTime); the header values are modelled on
common vendor conventions, not copied from conformance statements.

They are cheap on purpose (small matrices, few images): their pixels come from the phantom's tissue label maps
through per-tissue relaxation tables, not from the full image formation. They draw from their own random stream,
so the rest of a study is identical with or without them. Only the repeated cine may fill an exam slot: it is a
byte copy of the cine it repeats (same images, later series number), so whichever of the two the loader picks
the exam tensor is the same; the loader's rule picks the later one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cmr.dicom.geometry import unit
from cmr.synth.acquisition import Plane, SeriesPlan, render_label_maps
from cmr.synth.dicom_writer import StudyHeader, write_series
from cmr.synth.phantom import HeartPhantom
from cmr.synth.scanners import ScannerStyle
from cmr.synth.tissues import TISSUES

SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
KINDS: tuple[str, ...] = (
    "scout_3plane", "scout_ssfp", "ti_scout", "t1_source", "t1_map", "t2_map", "perfusion_rest",
    "perfusion_stress", "flow_magnitude", "flow_phase", "stir_black_blood", "lge_psir_phase", "cine_repeat",
    "cine_realtime", "derived", "secondary_capture",
)
REPEATED_SLOTS: tuple[str, ...] = ("cine_4ch", "cine_2ch", "cine_3ch")  # the cine an "_RPT" repeats
SMALL = (96, 96)  # matrix of most distractors: cheap, and no smaller than real mapping / perfusion matrices

# --- tissue properties: relaxation (ms at 1.5 T) and proton density, by tissue class ------------------------

_CLASS = {  # tissue id name -> class
    "air": "air", "subcutaneous_fat": "fat", "muscle": "muscle", "soft_tissue": "tissue", "lung": "lung",
    "liver": "liver", "bone": "bone", "descending_aorta": "blood", "pericardial_fat": "fat",
    "pericardium": "tissue", "effusion": "fluid", "epicardial_fat": "fat", "lv_myocardium": "myo",
    "rv_myocardium": "myo", "la_wall": "myo", "ra_wall": "myo", "aortic_wall": "myo", "lv_blood": "blood",
    "rv_blood": "blood", "la_blood": "blood", "ra_blood": "blood", "aortic_blood": "blood",
    "papillary_muscle": "myo",
}
_T1 = {"air": 1.0, "fat": 280.0, "muscle": 900.0, "tissue": 1100.0, "lung": 1200.0, "liver": 580.0, "bone": 400.0,
       "blood": 1550.0, "fluid": 3000.0, "myo": 1000.0}
_T2 = {"air": 1.0, "fat": 80.0, "muscle": 35.0, "tissue": 60.0, "lung": 30.0, "liver": 40.0, "bone": 40.0,
       "blood": 250.0, "fluid": 1000.0, "myo": 50.0}
_PD = {"air": 0.0, "fat": 1.0, "muscle": 0.8, "tissue": 0.85, "lung": 0.12, "liver": 0.8, "bone": 0.4,
       "blood": 1.0, "fluid": 1.0, "myo": 0.8}


def _table(values: dict[str, float]) -> NDArray[np.float32]:
    """Per-tissue-id lookup table from per-class values."""
    return np.array([values[_CLASS[t]] for t in TISSUES], dtype=np.float32)


def _is(cls: str) -> NDArray[np.bool_]:
    return np.array([_CLASS[t] == cls for t in TISSUES])


# --- vendor naming ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Naming:
    """How one vendor labels one kind of series."""

    description: str
    image_type: tuple[str, ...]
    sequence_name: str
    scanning_sequence: tuple[str, ...] = ("GR",)
    sequence_variant: tuple[str, ...] = ("SK", "SS")


_M = ("ORIGINAL", "PRIMARY", "M", "ND")
NAMING: dict[str, dict[str, Naming]] = {
    "siemens": {
        "scout_3plane": Naming("localizer_3plane", ("ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"), "*fl2d1",
                               ("GR",), ("SP", "OSP")),
        "scout_ssfp": Naming("trufi_loc_multi", _M, "*tfi2d1_12"),
        "ti_scout": Naming("TI_Scout", _M, "*tfi2d1_35", ("GR", "IR"), ("SK", "SP", "MP")),
        "t1_source": Naming("MOLLI_5(3)3_SAX", _M, "*tfi2d1_154", ("GR", "IR"), ("SK", "SP", "MP")),
        "t1_map": Naming("MOLLI_5(3)3_SAX_T1MAP", ("DERIVED", "PRIMARY", "T1 MAP", "ND", "MOCO"), "*tfi2d1_154",
                         ("GR", "IR"), ("SK", "SP", "MP")),
        "t2_map": Naming("T2map_flash_SAX_T2MAP", ("DERIVED", "PRIMARY", "T2 MAP", "ND", "MOCO"), "*tfl2d1_16"),
        "perfusion_rest": Naming("tfl_perf_REST", _M, "*tfl2d1_16", ("GR",), ("SK", "SP", "MP")),
        "perfusion_stress": Naming("tfl_perf_STRESS", _M, "*tfl2d1_16", ("GR",), ("SK", "SP", "MP")),
        "flow_magnitude": Naming("flow_Ao_tp_VENC250", _M, "*fl2d1_v250in", ("GR",), ("SP",)),
        "flow_phase": Naming("flow_Ao_tp_VENC250_P", ("ORIGINAL", "PRIMARY", "P", "ND"), "*fl2d1_v250in",
                             ("GR",), ("SP",)),
        "stir_black_blood": Naming("t2_tse_stir_sax_bb", ("ORIGINAL", "PRIMARY", "M", "NORM"), "*tir2d1_15",
                                   ("SE", "IR"), ("SK", "SP", "MP")),
        "lge_psir_phase": Naming("de_psir_sax_PHASE", ("ORIGINAL", "PRIMARY", "P", "ND"), "*tfl2d1_PSIR",
                                 ("GR", "IR"), ("SK", "SP", "MP")),
        "cine_realtime": Naming("RT_trufi_sax", _M, "*tfi2d1_rt"),
        "derived": Naming("cine_trufi_sax_MPR", ("DERIVED", "SECONDARY", "MPR", "ND"), "*tfi2d1_12"),
        "secondary_capture": Naming("Argus Report", ("DERIVED", "SECONDARY", "OTHER"), ""),
    },
    "ge": {
        "scout_3plane": Naming("3-Plane Loc FGRE", ("ORIGINAL", "PRIMARY", "LOCALIZER"), "fgre"),
        "scout_ssfp": Naming("FIESTA LOC", ("ORIGINAL", "PRIMARY", "OTHER"), "fiesta2d"),
        "ti_scout": Naming("CINE IR", ("ORIGINAL", "PRIMARY", "OTHER"), "fgre_cineir", ("GR", "IR"),
                           ("SK", "MP")),
        "t1_source": Naming("MOLLI SAX", ("ORIGINAL", "PRIMARY", "OTHER"), "fiesta_molli", ("GR", "IR"),
                            ("SK", "MP")),
        "t1_map": Naming("MOLLI SAX T1Map", ("DERIVED", "PRIMARY", "T1MAP"), "fiesta_molli", ("GR", "IR"),
                         ("SK", "MP")),
        "t2_map": Naming("T2Map SAX", ("DERIVED", "PRIMARY", "T2MAP"), "fiesta_t2prep"),
        "perfusion_rest": Naming("FGRE-ET PERF REST", ("ORIGINAL", "PRIMARY", "OTHER"), "fgret", ("GR",),
                                 ("SK", "MP")),
        "perfusion_stress": Naming("FGRE-ET PERF STRESS", ("ORIGINAL", "PRIMARY", "OTHER"), "fgret", ("GR",),
                                   ("SK", "MP")),
        "flow_magnitude": Naming("2D FastCINE PC Ao MAG", ("ORIGINAL", "PRIMARY", "OTHER"), "fcinepc"),
        "flow_phase": Naming("2D FastCINE PC Ao PHASE", ("ORIGINAL", "PRIMARY", "PHASE"), "fcinepc"),
        "stir_black_blood": Naming("BB T2 STIR FSE SAX", ("ORIGINAL", "PRIMARY", "OTHER"), "fse-ir",
                                   ("SE", "IR"), ("SK", "MP")),
        "lge_psir_phase": Naming("MDE PSIR SAX PHASE", ("ORIGINAL", "PRIMARY", "PHASE"), "fgre_psir",
                                 ("GR", "IR"), ("SK", "MP")),
        "cine_realtime": Naming("RT FIESTA SAX", ("ORIGINAL", "PRIMARY", "OTHER"), "fiesta_rt"),
        "derived": Naming("REFORMATTED", ("DERIVED", "SECONDARY", "REFORMATTED", "AVERAGE"), "fiesta2d"),
        "secondary_capture": Naming("ReportCard", ("DERIVED", "SECONDARY", "SCREEN SAVE"), ""),
    },
    "philips": {
        "scout_3plane": Naming("Survey", ("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"), "FFE"),
        "scout_ssfp": Naming("BTFE_loc", ("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"), "BTFE"),
        "ti_scout": Naming("LL_TI_scout", ("ORIGINAL", "PRIMARY", "M_IR", "M", "IR"), "TFE_LL", ("GR", "IR"),
                           ("SK", "MP")),
        "t1_source": Naming("MOLLI_SA", ("ORIGINAL", "PRIMARY", "M_IR", "M", "IR"), "BTFE_MOLLI", ("GR", "IR"),
                            ("SK", "MP")),
        "t1_map": Naming("T1map_MOLLI_SA", ("DERIVED", "PRIMARY", "T1 MAP", "T1", "UNSPECIFIED"), "BTFE_MOLLI",
                         ("GR", "IR"), ("SK", "MP")),
        "t2_map": Naming("T2map_GraSE_SA", ("DERIVED", "PRIMARY", "T2 MAP", "T2", "UNSPECIFIED"), "GraSE",
                         ("SE", "GR"), ("SK",)),
        "perfusion_rest": Naming("Perfusion_rest", ("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"), "TFE_SR",
                                 ("GR",), ("SK", "MP")),
        "perfusion_stress": Naming("Perfusion_stress", ("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"), "TFE_SR",
                                   ("GR",), ("SK", "MP")),
        "flow_magnitude": Naming("Qflow_Ao", ("ORIGINAL", "PRIMARY", "M_PCA", "M", "PCA"), "FFE_PC"),
        "flow_phase": Naming("Qflow_Ao", ("ORIGINAL", "PRIMARY", "VELOCITY MAP", "P", "PCA"), "FFE_PC"),
        "stir_black_blood": Naming("BB_T2W_STIR_SA", ("ORIGINAL", "PRIMARY", "M_IR", "M", "IR"), "TSE",
                                   ("SE", "IR"), ("SK", "MP")),
        "lge_psir_phase": Naming("IR_TFE_SA_PSIR", ("ORIGINAL", "PRIMARY", "P_IR", "P", "IR"), "TFE_PSIR",
                                 ("GR", "IR"), ("SK", "MP")),
        "cine_realtime": Naming("BTFE_RT_SA", ("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"), "BTFE_RT"),
        "derived": Naming("sBTFE_SA_MPR", ("DERIVED", "SECONDARY", "MPR", "M", "FFE"), "BTFE"),
        "secondary_capture": Naming("Philips screen capture", ("DERIVED", "SECONDARY", "OTHER"), ""),
    },
}


def _name(plan: SeriesPlan) -> str:
    """The series' folder (and label-map) name, as cmr.synth.generate writes it."""
    return f"series_{plan.series_number:03d}"


def vendor_of(style: ScannerStyle) -> str:
    m = style.manufacturer.lower()
    return "siemens" if "siemens" in m else "ge" if m.startswith("ge") else "philips"


# --- images from tissue labels ----------------------------------------------------------------------------

def _noisy(signal: NDArray[np.float32], rng: np.random.Generator, sigma: float, scale: float) -> NDArray[np.uint16]:
    """Rician magnitude noise, then stored values (12 bits)."""
    n = rng.standard_normal((2, *signal.shape), dtype=np.float32) * np.float32(sigma)
    return np.clip(np.hypot(signal + n[0], n[1]) * scale, 0, 4095).astype(np.uint16)


def _ir(labels: NDArray[np.uint8], ti: float) -> NDArray[np.float32]:
    """Inversion-recovery magnitude |1 - 2 exp(-TI/T1)| x proton density."""
    return (_table(_PD) * np.abs(1.0 - 2.0 * np.exp(-ti / _table(_T1))))[labels]


def _ssfp(labels: NDArray[np.uint8], style: ScannerStyle) -> NDArray[np.float32]:
    sig = {k: style.cine_signal.get(k, style.cine_signal.get("tissue", 0.4)) for k in _T1}
    return _table(sig)[labels]


@dataclass
class Distractor:
    """One distractor series: its plan (geometry, header) and how to form its images from tissue labels."""

    kind: str
    plan: SeriesPlan
    images: Callable[[NDArray[np.uint8]], NDArray[np.uint16]] | None = None  # labels [p, f, r, c] -> uint16
    copy_of: str | None = None  # the folder name of the series an "_RPT" repeats
    labels_of: tuple[str, list[int]] | None = None  # reuse these planes of a series' label maps (no rendering)
    label_phases: list[float] = field(default_factory=list)  # phases to render labels at (default: the plan's)


@dataclass
class Distractors:
    """Plans and writes the distractor series of one study (see the module docstring)."""

    style: ScannerStyle
    rng: np.random.Generator
    repeated_slot: str = ""
    kept: dict[str, NDArray[np.uint16]] = field(default_factory=dict)  # the images of the repeated cine

    def __post_init__(self) -> None:
        self.repeated_slot = REPEATED_SLOTS[int(self.rng.integers(len(REPEATED_SLOTS)))]

    def see(self, plan: SeriesPlan) -> None:
        """Called for every planned series while its images exist: keeps those of the cine to repeat."""
        if plan.slot == self.repeated_slot and plan.images is not None:
            self.kept[_name(plan)] = plan.images

    def write(self, phantom: HeartPhantom, plans: list[SeriesPlan], header: StudyHeader, rr_ms: float,
              folder: Path, label_maps: dict[str, NDArray[np.uint8]]) -> list[dict[str, Any]]:
        """Write every distractor series under `folder`; a repeated cine's label map is added to `label_maps`
        (it may fill an exam slot). Returns one entry per series: kind, series number, description."""
        out = []
        rendered: dict[tuple[Any, ...], NDArray[np.uint8]] = {}  # several distractors share planes and phases
        for d in self._plan(phantom, plans):
            name = _name(d.plan)
            if d.kind == "secondary_capture":
                _write_secondary_capture(d.plan, header, self.style, folder / name, self.rng)
            else:
                if d.copy_of is not None:
                    d.plan.images = self.kept[d.copy_of]
                    label_maps[name] = label_maps[d.copy_of]
                    label_maps[name + "_positions"] = label_maps[d.copy_of + "_positions"]
                else:
                    if d.labels_of is not None:
                        labels = label_maps[d.labels_of[0]][d.labels_of[1]]
                    else:
                        phases = d.label_phases or d.plan.trigger_fracs
                        key = (tuple(p.centre.tobytes() + p.row_dir.tobytes() + p.col_dir.tobytes()
                                     for p in d.plan.planes), tuple(phases), d.plan.matrix, d.plan.fov_mm)
                        if key not in rendered:
                            rendered[key] = render_label_maps(phantom, replace(d.plan, trigger_fracs=phases))
                        labels = rendered[key]
                    assert d.images is not None
                    d.plan.images = d.images(labels)
                write_series(d.plan, header, self.style, rr_ms, folder / name)
                d.plan.images = None
            out.append({"kind": d.kind, "series_number": d.plan.series_number, "description": d.plan.description})
        return out

    # --- planning ------------------------------------------------------------------------------------------

    def _plan(self, ph: HeartPhantom, plans: list[SeriesPlan]) -> list[Distractor]:
        style, rng = self.style, self.rng
        names = NAMING[vendor_of(style)]
        by_slot = {p.slot: p for p in plans}
        sax = by_slot["cine_sax"].planes
        mid = sax[len(sax) // 2]
        three = [sax[len(sax) // 4], mid, sax[(3 * len(sax)) // 4]]
        four_ch = by_slot["cine_4ch"].planes[0]
        two_ch = by_slot["cine_2ch"].planes[0]
        number = iter(range(max(p.series_number for p in plans) + 1, 10_000))
        scale = float(rng.uniform(900, 1600))
        sigma = style.noise
        fov = (360.0, 360.0)
        t1_method = "ShMOLLI" if rng.random() < 0.3 else "MOLLI"

        def plan(kind: str, planes: list[Plane], fracs: list[float], matrix: tuple[int, int] = SMALL,
                 thickness: float = 8.0, fov_mm: tuple[float, float] = fov, ti: float | None = None,
                 extra: dict[str, Any] | None = None, naming: Naming | None = None) -> SeriesPlan:
            n = naming or names[kind]
            description = n.description
            if kind.startswith("t1_") and t1_method == "ShMOLLI":
                description = description.replace("MOLLI_5(3)3", "MOLLI").replace("MOLLI", "ShMOLLI")
            header: dict[str, Any] = {
                "ProtocolName": description, "ImageType": list(n.image_type), "SequenceName": n.sequence_name,
                "ScanningSequence": list(n.scanning_sequence), "SequenceVariant": list(n.sequence_variant),
            }
            header["InversionTime"] = None if ti is None else round(float(ti), 1)
            header.update(extra or {})
            shown = "" if rng.random() < style.empty_description_rate else description
            return SeriesPlan("distractor", "other", "cine", planes, fracs, matrix, fov_mm, thickness, next(number),
                              shown, inversion_time=ti, header=header)

        def ssfp_images(labels: NDArray[np.uint8]) -> NDArray[np.uint16]:
            return _noisy(_ssfp(labels, style), rng, sigma, scale)

        out: list[Distractor] = []
        # 3-plane scout in one series: 3 parallel slices in each of the axial, coronal and sagittal planes.
        centre = ph.apex + ph.w * (0.55 * ph.lv_c)
        axes = [(np.array([1.0, 0, 0]), np.array([0, 1.0, 0])), (np.array([1.0, 0, 0]), np.array([0, 0, -1.0])),
                (np.array([0, 1.0, 0]), np.array([0, 0, -1.0]))]
        scout = [Plane(centre + k * 15.0 * np.cross(r, c), r, c) for r, c in axes for k in (-1, 0, 1)]
        out.append(Distractor("scout_3plane", plan("scout_3plane", scout, [0.7], fov_mm=(420.0, 420.0),
                                                   thickness=10.0), ssfp_images))
        # SSFP scout: a few parallel oblique single-phase slices about the 2CH plane.
        n2 = two_ch.normal
        ssfp_scout = [Plane(two_ch.centre + k * 12.0 * n2, two_ch.row_dir, two_ch.col_dir) for k in (-1, 0, 1)]
        out.append(Distractor("scout_ssfp", plan("scout_ssfp", ssfp_scout, [0.7]), ssfp_images))

        # TI scout (Look-Locker): one 4CH slice, an image every ~50 ms after the inversion.
        ti_fracs = [0.05 + 0.07 * k for k in range(12)]
        rr = 60000.0 / ph.truth.heart_rate
        ti0 = 100.0

        def ti_images(labels: NDArray[np.uint8]) -> NDArray[np.uint16]:
            post = {**_T1, "myo": 450.0, "blood": 300.0}  # after gadolinium
            frames = []
            for f, frac in enumerate(ti_fracs):
                ti = ti0 + (frac - ti_fracs[0]) * rr
                tab = _table(_PD) * np.abs(1.0 - 2.0 * np.exp(-ti / _table(post)))
                frames.append(tab[labels[:, 0]])
            return _noisy(np.stack(frames, axis=1), rng, sigma * 0.6, scale)

        out.append(Distractor("ti_scout", plan("ti_scout", [four_ch], ti_fracs, ti=ti0,
                                               extra={"EchoTime": 1.1}), ti_images, label_phases=[0.72]))

        # T1 mapping: source images at 8 inversion times (one cardiac phase) and the fitted map.
        molli_ti = [100.0, 180.0, 260.0, 1100.0, 1180.0, 1260.0, 2100.0, 2180.0]

        def t1_sources(labels: NDArray[np.uint8]) -> NDArray[np.uint16]:
            return _noisy(np.stack([_ir(labels[:, 0], ti) for ti in molli_ti], axis=1), rng, sigma * 0.6, scale)

        def t1_map(labels: NDArray[np.uint8]) -> NDArray[np.uint16]:
            return np.clip(_table(_T1)[labels] + rng.normal(0, 25, labels.shape), 0, 4095).astype(np.uint16)

        out.append(Distractor("t1_source", plan("t1_source", [mid], [0.72] * len(molli_ti), ti=molli_ti[0]),
                              t1_sources, label_phases=[0.72]))
        out.append(Distractor("t1_map", plan("t1_map", [mid], [0.72], ti=molli_ti[0]), t1_map))

        def t2_map(labels: NDArray[np.uint8]) -> NDArray[np.uint16]:
            return np.clip(_table(_T2)[labels] * 10 + rng.normal(0, 20, labels.shape), 0, 4095).astype(np.uint16)

        out.append(Distractor("t2_map", plan("t2_map", [mid], [0.72], extra={"RescaleSlope": 0.1,
                                                                              "RescaleIntercept": 0}), t2_map))

        # First-pass perfusion: three SAX slices, one image per heartbeat as the bolus passes RV -> LV -> myocardium.
        beats = 8

        def perfusion(stress: bool) -> Callable[[NDArray[np.uint8]], NDArray[np.uint16]]:
            def images(labels: NDArray[np.uint8]) -> NDArray[np.uint16]:
                lab = labels[:, 0]
                base = 0.15 * _table(_PD)[lab]
                rv = np.isin(lab, [TISSUES.index("rv_blood"), TISSUES.index("ra_blood")])
                lv = _is("blood")[lab] & ~rv
                myo = _is("myo")[lab]
                frames = []
                for b in range(beats):
                    def bolus(t0: float) -> float:
                        t = max(0.0, b - t0)
                        return float(t**2 * np.exp(-t / 1.2)) / 1.6
                    img = base.copy()
                    img[rv] += 0.9 * bolus(1.0)
                    img[lv] += 0.9 * bolus(3.0)
                    img[myo] += (0.35 if stress else 0.22) * bolus(4.5)
                    frames.append(img)
                return _noisy(np.stack(frames, axis=1), rng, sigma, scale)
            return images

        for kind, stress in (("perfusion_rest", False), ("perfusion_stress", True)):
            out.append(Distractor(kind, plan(kind, three, [0.1] * beats, thickness=10.0), perfusion(stress),
                                  label_phases=[0.72]))

        # Phase-contrast flow through the aortic root: magnitude and velocity (phase) images, 10 phases.
        up = np.array([0.0, 0.0, 1.0])
        ao_normal = unit(0.6 * ph.w + 0.8 * up)
        ao_row = unit(np.cross(ao_normal, np.array([1.0, 0.0, 0.0])))
        ao_plane = Plane(ph.apex + ph.w * (ph.lv_c + 18.0), ao_row, np.cross(ao_normal, ao_row))
        flow_fracs = [k / 10 for k in range(10)]

        def flow_phase(labels: NDArray[np.uint8]) -> NDArray[np.uint16]:
            vessel = np.isin(labels, [TISSUES.index("aortic_blood"), TISSUES.index("descending_aorta")])
            systole = np.array([np.sin(np.pi * min(f / 0.35, 1.0)) if f < 0.35 else 0.0 for f in flow_fracs],
                               dtype=np.float32)
            v = 2048.0 + rng.normal(0, 60, labels.shape) + vessel * 1500.0 * systole[None, :, None, None]
            return np.clip(v, 0, 4095).astype(np.uint16)

        out.append(Distractor("flow_magnitude", plan("flow_magnitude", [ao_plane], flow_fracs), ssfp_images))
        out.append(Distractor("flow_phase", plan("flow_phase", [ao_plane], flow_fracs), flow_phase))

        # T2 STIR black blood: three SAX slices, spin echo with a short-tau inversion (fat and blood dark).
        def stir(labels: NDArray[np.uint8]) -> NDArray[np.uint16]:
            sig = _ir(labels, 170.0) * np.exp(-65.0 / _table(_T2))[labels]
            sig[_is("blood")[labels]] *= 0.05
            return _noisy(sig, rng, sigma * 0.5, scale * 2.0)

        out.append(Distractor("stir_black_blood", plan("stir_black_blood", three, [0.72], ti=170.0,
                                                        extra={"EchoTime": 65.0, "RepetitionTime": 1600.0}), stir))

        # The PSIR phase partner of the LGE short-axis stack: same planes and matrix, a smooth phase map.
        lge = by_slot["lge_sax"]

        def psir_phase(labels: NDArray[np.uint8]) -> NDArray[np.uint16]:
            rows, cols = labels.shape[2:]
            yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
            ramp = np.sin(xx / cols * rng.uniform(1, 3)) + np.cos(yy / rows * rng.uniform(1, 3))
            body = (_table(_PD)[labels] > 0.05)
            v = 2048.0 + body * 900.0 * ramp[None, None] + rng.normal(0, 40, labels.shape)
            return np.clip(v, 0, 4095).astype(np.uint16)

        out.append(Distractor("lge_psir_phase", plan("lge_psir_phase", lge.planes, lge.trigger_fracs,
                                                      matrix=lge.matrix, fov_mm=lge.fov_mm,
                                                      thickness=lge.slice_thickness, ti=lge.inversion_time),
                              psir_phase, labels_of=(_name(lge), list(range(len(lge.planes))))))

        # A repeated cine ("_RPT"): a byte copy of one LAX cine with a later series number.
        rep = by_slot[self.repeated_slot]
        rpt = replace(rep, series_number=next(number), description=f"{rep.description or rep.slot}_RPT",
                      header={"ProtocolName": f"{rep.description or rep.slot}_RPT"}, images=None)
        out.append(Distractor("cine_repeat", rpt, copy_of=_name(rep)))

        # Real-time cine: one SAX slice, 12 frames with no ECG trigger (GE writes trigger time 0 instead).
        rt_fracs = [(k * 0.13) % 1.0 for k in range(12)]
        ge = vendor_of(style) == "ge"
        rt = plan("cine_realtime", [mid], [0.0] * len(rt_fracs) if ge else rt_fracs, matrix=(80, 80),
                  extra={"CardiacNumberOfImages": None, "HeartRate": None})
        rt.triggered = ge

        def realtime(labels: NDArray[np.uint8]) -> NDArray[np.uint16]:
            return ssfp_images(labels)

        out.append(Distractor("cine_realtime", rt, realtime, label_phases=rt_fracs))

        # Derived secondary: a reformat of the mid SAX cine slice at end-diastole and end-systole, made after the
        # exam (CardiacNumberOfImages says 2, so by its headers alone it would pass for a cine).
        cine = by_slot["cine_sax"]
        es = int(np.argmin([abs(f - ph.cycle.t_es) for f in cine.trigger_fracs]))
        derived = plan("derived", [mid], [cine.trigger_fracs[0], cine.trigger_fracs[es]], matrix=cine.matrix,
                       fov_mm=cine.fov_mm, thickness=cine.slice_thickness)

        def derived_images(labels: NDArray[np.uint8]) -> NDArray[np.uint16]:
            return ssfp_images(labels[:, [0, es]])

        out.append(Distractor("derived", derived, derived_images, labels_of=(_name(cine), [len(sax) // 2])))
        # Secondary capture: a report screenshot (RGB, no patient geometry).
        out.append(Distractor("secondary_capture", plan("secondary_capture", [mid], [0.0], matrix=(128, 128))))
        return out


def _write_secondary_capture(plan: SeriesPlan, hdr: StudyHeader, style: ScannerStyle, folder: Path,
                             rng: np.random.Generator) -> Path:
    """One RGB Secondary Capture image without patient geometry (a vendor report page)."""
    folder.mkdir(parents=True, exist_ok=True)
    sop_uid = generate_uid(entropy_srcs=[hdr.study_uid, str(plan.series_number), "sc"])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE_STORAGE, sop_uid
    ds.Modality, ds.ConversionType = "MR", "WSD"
    ds.Manufacturer = style.manufacturer
    ds.PatientName, ds.PatientID = hdr.patient_name, hdr.patient_id
    ds.StudyInstanceUID = hdr.study_uid
    ds.StudyDate = hdr.study_date.strftime("%Y%m%d")
    ds.AccessionNumber = hdr.accession
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[hdr.study_uid, str(plan.series_number), "series"])
    ds.SeriesNumber = plan.series_number
    ds.SeriesDescription = plan.description
    ds.ImageType = plan.header["ImageType"]
    ds.InstanceNumber = 1
    rows, cols = plan.matrix
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    page = np.full((rows, cols, 3), 245, dtype=np.uint8)
    page[8:24, 8 : cols - 8] = (30, 60, 120)  # a title bar
    page[40:, 8 : cols - 8] = rng.integers(0, 255, (rows - 40, cols - 16, 1), dtype=np.uint8) // 4 + 180
    ds.PixelData = page.tobytes()
    path = folder / "SC00001.dcm"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    path.write_bytes(buf.getvalue())
    return path


__all__ = ["KINDS", "NAMING", "Distractor", "Distractors", "Naming", "vendor_of"]
