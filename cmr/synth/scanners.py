"""Scanner styles: how one vendor x field strength renders and labels an exam.

Styles differ in everything a real site differs in (matrix, field of view, phases, noise, contrast, bias
field, artefacts, series naming, file layout) so that a model trained on some styles must generalise to the
held-out one. Tissue signal levels are relative SSFP / IR-GRE magnitudes, tuned by eye against real images.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScannerStyle:
    name: str
    manufacturer: str
    model_name: str
    field_strength: float  # tesla
    matrix: tuple[int, int]  # rows, cols at the demo size
    fov_mm: tuple[float, float]  # rows, cols
    phases: int  # cine phases per cycle
    sax_slices: tuple[int, int]  # inclusive range of short-axis slices
    slice_thickness_mm: float
    slice_gap_mm: float
    noise: float  # Rician noise sigma relative to blood signal 1.0
    bias: float  # amplitude of the smooth receive-coil bias field (0 = flat)
    banding: float  # strength of off-resonance dark bands (3 T SSFP); 0 for none
    blood_myo_contrast: float  # multiplies the cine blood/myocardium contrast
    lge_nulling_error: float  # std of the myocardial nulling error (imperfect inversion time)
    multiframe: bool  # Enhanced MR Image Storage, one file per series
    series_names: dict[str, str]  # slot -> SeriesDescription; "" writes an empty description
    empty_description_rate: float  # chance that a series gets an empty SeriesDescription anyway
    misregistration_mm: float  # breath-hold inconsistency between short-axis slices
    held_out: bool = False
    # Signal of tissues in cine SSFP, relative to blood = 1.0
    cine_signal: dict[str, float] = field(default_factory=dict)


_CINE_1P5T = {
    "blood": 1.0, "myo": 0.22, "fat": 0.95, "muscle": 0.25, "lung": 0.04, "liver": 0.35, "fluid": 1.05,
    "bone": 0.30, "air": 0.0, "pericardium": 0.06, "tissue": 0.42,
}
_CINE_3T = {**_CINE_1P5T, "myo": 0.18, "blood": 1.0, "fat": 0.85, "liver": 0.30}

STYLES: dict[str, ScannerStyle] = {
    s.name: s
    for s in (
        ScannerStyle(
            name="siemens_aera_1.5T", manufacturer="SIEMENS", model_name="Aera", field_strength=1.5,
            matrix=(144, 168), fov_mm=(300.0, 350.0), phases=25, sax_slices=(9, 12), slice_thickness_mm=8.0,
            slice_gap_mm=2.0, noise=0.035, bias=0.25, banding=0.0, blood_myo_contrast=1.0,
            lge_nulling_error=0.05, multiframe=False,
            series_names={"localizer": "localizer", "cine_sax": "cine_trufi_sax", "cine_2ch": "cine_trufi_2ch",
                          "cine_3ch": "cine_trufi_3ch", "cine_4ch": "cine_trufi_4ch",
                          "lge_sax": "de_psir_sax", "lge_lax": "de_psir_lax"},
            empty_description_rate=0.03, misregistration_mm=1.5, cine_signal=_CINE_1P5T,
        ),
        ScannerStyle(
            name="siemens_skyra_3T", manufacturer="SIEMENS", model_name="Skyra", field_strength=3.0,
            matrix=(160, 192), fov_mm=(320.0, 380.0), phases=25, sax_slices=(10, 12), slice_thickness_mm=7.0,
            slice_gap_mm=3.0, noise=0.025, bias=0.45, banding=0.5, blood_myo_contrast=1.1,
            lge_nulling_error=0.06, multiframe=False,
            series_names={"localizer": "AAHScout", "cine_sax": "TF2D_cine_SA_stack", "cine_2ch": "TF2D_cine_2CV",
                          "cine_3ch": "TF2D_cine_LVOT", "cine_4ch": "TF2D_cine_4CV",
                          "lge_sax": "TFL_PSIR_SA", "lge_lax": "TFL_PSIR_LAX"},
            empty_description_rate=0.05, misregistration_mm=2.0, cine_signal=_CINE_3T,
        ),
        ScannerStyle(
            name="ge_signa_1.5T", manufacturer="GE MEDICAL SYSTEMS", model_name="Signa HDxt", field_strength=1.5,
            matrix=(128, 128), fov_mm=(340.0, 340.0), phases=20, sax_slices=(8, 11), slice_thickness_mm=8.0,
            slice_gap_mm=2.0, noise=0.045, bias=0.35, banding=0.0, blood_myo_contrast=0.9,
            lge_nulling_error=0.08, multiframe=False,
            # GE sites often leave descriptions empty or terse; the loader must use geometry.
            series_names={"localizer": "3-pl loc", "cine_sax": "FIESTA CINE SAX", "cine_2ch": "",
                          "cine_3ch": "", "cine_4ch": "FIESTA CINE", "lge_sax": "MDE SAX", "lge_lax": ""},
            empty_description_rate=0.35, misregistration_mm=2.5, cine_signal=_CINE_1P5T,
        ),
        ScannerStyle(
            name="philips_ingenia_1.5T", manufacturer="Philips", model_name="Ingenia", field_strength=1.5,
            matrix=(160, 160), fov_mm=(320.0, 320.0), phases=30, sax_slices=(10, 12), slice_thickness_mm=8.0,
            slice_gap_mm=0.0, noise=0.03, bias=0.3, banding=0.0, blood_myo_contrast=1.05,
            lge_nulling_error=0.05, multiframe=True,
            series_names={"localizer": "Survey", "cine_sax": "sBTFE_SA", "cine_2ch": "sBTFE_2CH",
                          "cine_3ch": "sBTFE_LVOT", "cine_4ch": "sBTFE_4CH",
                          "lge_sax": "IR_TFE_SA", "lge_lax": "IR_TFE_LAX"},
            empty_description_rate=0.05, misregistration_mm=1.5, cine_signal=_CINE_1P5T,
        ),
        # Held out from training: a GE 3 T scanner. It combines traits seen separately in training (GE naming
        # and layout, 3 T banding and bias) with its own matrix, phase count and contrast.
        ScannerStyle(
            name="ge_premier_3T", manufacturer="GE MEDICAL SYSTEMS", model_name="SIGNA Premier",
            field_strength=3.0, matrix=(176, 176), fov_mm=(360.0, 360.0), phases=24, sax_slices=(9, 12),
            slice_thickness_mm=8.0, slice_gap_mm=1.0, noise=0.03, bias=0.5, banding=0.4,
            blood_myo_contrast=0.95, lge_nulling_error=0.07, multiframe=False,
            series_names={"localizer": "3Plane Loc SSFSE", "cine_sax": "FIESTA Cine SAX", "cine_2ch": "2CH FIESTA",
                          "cine_3ch": "LVOT FIESTA", "cine_4ch": "4CH FIESTA", "lge_sax": "MDE PSIR SAX",
                          "lge_lax": "MDE PSIR LAX"},
            empty_description_rate=0.25, misregistration_mm=2.0, held_out=True, cine_signal=_CINE_3T,
        ),
    )
}

HELD_OUT_STYLE: str = next(s.name for s in STYLES.values() if s.held_out)
TRAINING_STYLES: tuple[str, ...] = tuple(s.name for s in STYLES.values() if not s.held_out)


# Pools a data set can draw its scanner styles from, besides one named style.
STYLE_POOLS: dict[str, tuple[str, ...]] = {
    "all": tuple(STYLES),
    "training": TRAINING_STYLES,
    "heldout": (HELD_OUT_STYLE,),
}


def style_pool(name: str | None) -> tuple[str, ...]:
    """Styles a study may be drawn from: a pool name (all, training, heldout), one style name, or None (all)."""
    if name is None:
        return STYLE_POOLS["all"]
    if name in STYLE_POOLS:
        return STYLE_POOLS[name]
    get_style(name)  # raises with the list of valid names
    return (name,)


def get_style(name: str) -> ScannerStyle:
    try:
        return STYLES[name]
    except KeyError:
        raise ValueError(f"unknown scanner style {name!r}; choose one of: {', '.join(STYLES)}") from None
