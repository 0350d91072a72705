"""California housing (chapter 2): median house value of 20 640 census block groups.

The archive (StatLib's cal_housing.tgz) holds raw block totals; the 8 features are
the usual per-household averages derived from them (as scikit-learn presents them).
The target is the median house value in units of 100 000 dollars.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from mgelab.data.arrays import Split, hold_out_test
from mgelab.data.errors import DataError
from mgelab.data.fetch import RemoteFile
from mgelab.data.remote import RemoteDataModule, iter_tar_members
from mgelab.data.settings import check_split_size

CALIFORNIA_URL = "https://ndownloader.figshare.com/files"
# figshare serves it as .../files/5976036; the sha256 is of the archive's bytes
# (a .tgz is gzip, so a payload hash would be of the inner tar instead).
ARCHIVE = RemoteFile(
    "cal_housing.tgz",
    sha256="aaa5c9a6afe2225cc2aed2723682ae403280c4a3695a2ddda4ffb5d8215ea681",
    remote_name="5976036",
)
MEMBER = "CaliforniaHousing/cal_housing.data"
COLUMNS = (
    "longitude", "latitude", "housingMedianAge", "totalRooms", "totalBedrooms",
    "population", "households", "medianIncome", "medianHouseValue",
)
FEATURE_NAMES = ("MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude")

_FIX = "delete it so it is fetched again, or replace it with the original cal_housing.tgz"


def parse_table(data: bytes, where: str) -> np.ndarray:
    """The comma-separated rows as float64 (N, 9), in COLUMNS order."""
    try:
        table = np.loadtxt(io.BytesIO(data), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{where}: not {len(COLUMNS)} comma-separated numbers per row ({exc}): {_FIX}.") from exc
    if table.shape[1] != len(COLUMNS) or len(table) == 0:
        raise DataError(f"{where}: expected rows of {len(COLUMNS)} columns ({', '.join(COLUMNS)}), "
                        f"got a table of shape {table.shape}: {_FIX}.")
    return table


def derive_features(table: np.ndarray, where: str = "cal_housing.data") -> Tuple[np.ndarray, np.ndarray]:
    """Features (N, 8) float32 in FEATURE_NAMES order and target (N, 1) float32."""
    col = {name: table[:, i] for i, name in enumerate(COLUMNS)}
    households = col["households"]
    if np.any(households <= 0):
        row = int(np.argmax(households <= 0))
        raise DataError(f"{where}: row {row + 1} has households={households[row]:g}; "
                        f"the per-household features need at least one: {_FIX}.")
    features = np.stack([
        col["medianIncome"],
        col["housingMedianAge"],
        col["totalRooms"] / households,
        col["totalBedrooms"] / households,
        col["population"],
        col["population"] / households,
        col["latitude"],
        col["longitude"],
    ], axis=1)
    target = col["medianHouseValue"][:, None] / 100_000.0
    return features.astype(np.float32), target.astype(np.float32)


def load_california_archive(archive: Path) -> Tuple[np.ndarray, np.ndarray]:
    """(features, target) of every row of cal_housing.tgz."""
    data = dict(iter_tar_members(archive, (MEMBER,)))[MEMBER]  # raises DataError if absent
    where = f"{archive} (member {MEMBER})"
    return derive_features(parse_table(data, where), where)


class CaliforniaHousing(RemoteDataModule):
    """Regression: inputs (N, 8) float32, targets (N, 1) float32.

    Constructor: data_dir, val_size=0.25, test_size=0.2, batch_size=64, eval_batch_size=4096,
    then RemoteDataModule's options and the batching options. test_size (a fraction of all
    rows, or a count) is held out with the seed; val_size is carved from the rest by the base
    class, so the defaults give train/val/test = 3:1:1. Normalisation is fitted on train only.
    """

    task = "regression"
    feature_names = FEATURE_NAMES
    cache_name = "california-housing"
    remote_files = (ARCHIVE,)
    default_base_url = CALIFORNIA_URL
    default_name = "california_housing"
    sample_shape = (len(FEATURE_NAMES),)
    target_size = 1  # the median house value

    # 16 512 training rows of 8 features: small steps, and val/test each in one batch.
    def __init__(self, data_dir: str, *, val_size: float | int = 0.25, test_size: float | int = 0.2,
                 batch_size: int = 64, eval_batch_size: int = 4096, **options) -> None:
        super().__init__(data_dir, val_size=val_size, batch_size=batch_size, eval_batch_size=eval_batch_size,
                         **options)
        check_split_size("data.test_size", test_size, allow_zero=False)
        self.test_size = test_size

    def load_splits(self) -> Dict[str, Split]:
        features, target = load_california_archive(self.fetch()[ARCHIVE.name])
        whole = Split(features, target)
        return hold_out_test(whole, self.test_size, self.seed)
