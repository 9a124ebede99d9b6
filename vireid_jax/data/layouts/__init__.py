"""Raw dataset layouts: enumerate image files into `Record`s.

Three datasets, each in the layout its authors ship (spec baseline_data_eval.md §1; data/README.md
shows the trees):

* SYSU-MM01 (Wu et al., ICCV'17), the unpacked download (the reference code calls the folder
  `SYSU-MM01/ori_data/`)::

    <root>/
      cam1/ … cam6/
        <person_id:04d>/        only if that camera saw that person
          <k:04d>.jpg           k = 1, 2, … running index inside (camera, person)
      exp/
        train_id.txt  val_id.txt  test_id.txt    one line of comma-separated ids, e.g. "1,2,4,5"

* RegDB (Nguyen et al., Sensors'17): images listed by index files, 10 random train/test splits
  ("trials")::

    <root>/
      Visible/<person>/<file>.bmp   Thermal/<person>/<file>.bmp
      idx/{train,test}_{visible,thermal}_{t}.txt    t = 1..10; lines "<relative path> <label>"

* LLCM (Zhang & Wang, CVPR'23): training images listed by index files, test images in camera
  folders::

    <root>/
      idx/train_vis.txt  idx/train_nir.txt     lines "<relative path> <label>"
      idx/test_id.txt                          one line of comma-separated test ids
      test_vis/cam1 … cam9/<person_id:04d>/<file>.jpg
      test_nir/cam1, cam2, cam4 … cam9/<person_id:04d>/<file>.jpg

The synthetic dataset (`vireid_jax.data.synthetic`) writes each of these layouts, so the
functions here serve both. Everything is pathlib code: no TensorFlow, no NumPy, no image is
opened (`vireid_jax.data.builders` decodes them).

Record order follows each reference loader (AGW `pre_process_sysu.py`, `data_manager.py`,
`data_loader.py`; the LLCM fork of AGW), because the order decides which index a sampler seed
picks and which file a gallery draw picks. Camera numbers are 1-based, as the references assign
them: SYSU-MM01 and LLCM from the `cam<k>` folder (LLCM training images from the `_c<kk>_` part
of the file name), RegDB 1 for every visible and 2 for every thermal image (the AGW RegDB
protocol's "query cam 1, gallery cam 2", spec §7.5).

Modules: `common` (records, errors, id/index file readers, label and folder checks, counting,
modality names) and one module per dataset, named like its TFDS builder in
`vireid_jax.data.builders`: `sysu_mm01`, `regdb`, `llcm`. This package re-exports their
public names, so callers use `layouts.X`.
"""

from vireid_jax.data.layouts.common import DISPLAY_NAMES
from vireid_jax.data.layouts.common import INFRARED
from vireid_jax.data.layouts.common import MODALITIES
from vireid_jax.data.layouts.common import NO_LABEL
from vireid_jax.data.layouts.common import SYNTHETIC_CONFIGS
from vireid_jax.data.layouts.common import VISIBLE
from vireid_jax.data.layouts.common import DatasetError
from vireid_jax.data.layouts.common import DatasetIntegrityError
from vireid_jax.data.layouts.common import DatasetNotFoundError
from vireid_jax.data.layouts.common import IndexEntry
from vireid_jax.data.layouts.common import Modality
from vireid_jax.data.layouts.common import Record
from vireid_jax.data.layouts.common import count_by
from vireid_jax.data.layouts.common import count_records
from vireid_jax.data.layouts.common import count_split
from vireid_jax.data.layouts.common import read_id_file
from vireid_jax.data.layouts.common import read_index_file
from vireid_jax.data.layouts.sysu_mm01 import SYSU_CAMERAS
from vireid_jax.data.layouts.sysu_mm01 import SYSU_INDOOR_CAMERAS
from vireid_jax.data.layouts.sysu_mm01 import SYSU_INFRARED_CAMERAS
from vireid_jax.data.layouts.sysu_mm01 import SYSU_SPLITS
from vireid_jax.data.layouts.sysu_mm01 import SYSU_VISIBLE_CAMERAS
from vireid_jax.data.layouts.sysu_mm01 import check_sysu_root
from vireid_jax.data.layouts.sysu_mm01 import read_sysu_id_file
from vireid_jax.data.layouts.sysu_mm01 import read_sysu_splits
from vireid_jax.data.layouts.sysu_mm01 import sysu_camera_modality
from vireid_jax.data.layouts.sysu_mm01 import sysu_test_records
from vireid_jax.data.layouts.sysu_mm01 import sysu_train_records
from vireid_jax.data.layouts.regdb import REGDB_THERMAL_CAMERA
from vireid_jax.data.layouts.regdb import REGDB_TRIALS
from vireid_jax.data.layouts.regdb import REGDB_VISIBLE_CAMERA
from vireid_jax.data.layouts.regdb import check_regdb_root
from vireid_jax.data.layouts.regdb import check_regdb_trial
from vireid_jax.data.layouts.regdb import regdb_index_file
from vireid_jax.data.layouts.regdb import regdb_test_records
from vireid_jax.data.layouts.regdb import regdb_train_records
from vireid_jax.data.layouts.llcm import LLCM_CAMERAS
from vireid_jax.data.layouts.llcm import LLCM_INFRARED_TEST_CAMERAS
from vireid_jax.data.layouts.llcm import LLCM_TEST_CAMERAS
from vireid_jax.data.layouts.llcm import LLCM_TEST_FOLDERS
from vireid_jax.data.layouts.llcm import LLCM_TEST_ID_FILE
from vireid_jax.data.layouts.llcm import LLCM_TRAIN_INDEX_FILES
from vireid_jax.data.layouts.llcm import LLCM_VISIBLE_TEST_CAMERAS
from vireid_jax.data.layouts.llcm import check_llcm_root
from vireid_jax.data.layouts.llcm import llcm_camera_of_file_name
from vireid_jax.data.layouts.llcm import llcm_test_records
from vireid_jax.data.layouts.llcm import llcm_train_records

__all__ = [
    "DISPLAY_NAMES",
    "DatasetError",
    "DatasetIntegrityError",
    "DatasetNotFoundError",
    "INFRARED",
    "IndexEntry",
    "LLCM_CAMERAS",
    "LLCM_INFRARED_TEST_CAMERAS",
    "LLCM_TEST_CAMERAS",
    "LLCM_TEST_FOLDERS",
    "LLCM_TEST_ID_FILE",
    "LLCM_TRAIN_INDEX_FILES",
    "LLCM_VISIBLE_TEST_CAMERAS",
    "MODALITIES",
    "Modality",
    "NO_LABEL",
    "REGDB_THERMAL_CAMERA",
    "REGDB_TRIALS",
    "REGDB_VISIBLE_CAMERA",
    "Record",
    "SYNTHETIC_CONFIGS",
    "SYSU_CAMERAS",
    "SYSU_INDOOR_CAMERAS",
    "SYSU_INFRARED_CAMERAS",
    "SYSU_SPLITS",
    "SYSU_VISIBLE_CAMERAS",
    "VISIBLE",
    "check_llcm_root",
    "check_regdb_root",
    "check_regdb_trial",
    "check_sysu_root",
    "count_by",
    "count_records",
    "count_split",
    "llcm_camera_of_file_name",
    "llcm_test_records",
    "llcm_train_records",
    "read_id_file",
    "read_index_file",
    "read_sysu_id_file",
    "read_sysu_splits",
    "regdb_index_file",
    "regdb_test_records",
    "regdb_train_records",
    "sysu_camera_modality",
    "sysu_test_records",
    "sysu_train_records",
]
