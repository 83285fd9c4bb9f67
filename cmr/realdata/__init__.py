"""Real cardiac MRI kept outside the repository (`Settings.realdata_dir`, env CMR_REALDATA_DIR, default
`<repo>/../shared/realdata`): ACDC for the real-scan evaluation (`cmr.realdata.acdc`, evaluation only) and
the Sunnybrook contours (`cmr.realdata.sunnybrook`, CC0). Submodules are imported on demand, so importing
this package stays light."""

from cmr.realdata.acdc import (
    AcdcLayoutError,
    AcdcPatient,
    RealDataMissingError,
    acdc_dir,
    convert_patients,
    derive_labels,
    list_patients,
    realdata_root,
)

__all__ = [
    "AcdcLayoutError",
    "AcdcPatient",
    "RealDataMissingError",
    "acdc_dir",
    "convert_patients",
    "derive_labels",
    "list_patients",
    "realdata_root",
]
