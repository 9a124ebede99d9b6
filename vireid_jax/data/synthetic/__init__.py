"""A procedurally rendered RGB-IR person re-identification dataset, in a real dataset's layout.

The dataset is written in exactly the raw on-disk layout of a real dataset
(`vireid_jax.data.layouts`, data/README.md), so the loader, builder and evaluation protocols
that serve the real data serve it unchanged:

* "sysu" (`generate_sysu`): SYSU-MM01's `cam1..cam6/<person_id:04d>/<k:04d>.jpg` and
  `exp/{train,val,test}_id.txt`; six cameras, four RGB and two NIR.
* "regdb" (`generate_regdb`): RegDB's `Visible/`, `Thermal/` (co-registered pairs, BMP) and the
  index files of ten random train/test splits, `idx/{train,test}_{visible,thermal}_{t}.txt`.
* "llcm" (`generate_llcm`): LLCM's nine cameras that film in both modalities, low-light visible
  images; training images listed by `idx/train_{vis,nir}.txt`, test images in
  `test_{vis,nir}/cam<k>/<person_id:04d>/`, test ids in `idx/test_id.txt`.

It needs no download and is small enough to train and evaluate a narrow ResNet on a laptop CPU.
Each generator writes a manifest (`synthetic.json`) with its options and the counts the dataset
has (ids, images per modality and camera, per split), which the builders' integrity check
holds the folder to, as it holds a real download to the published counts.

Rendering model
---------------
Each identity is a pedestrian drawn from the seed (`sample_person_attributes`): body proportions
(shoulder and hip width, head size, leg length, limb width), an upper garment (short sleeves,
long sleeves or a long coat) and a lower garment (trousers, shorts or a skirt), each with a
texture pattern (plain, horizontal/vertical/diagonal stripes, checks, dots or a two-tone block,
with a period and a phase) made of two materials; hair style, hat, bag (backpack, shoulder bag,
hand bag) and a chest emblem. Discrete attributes of two identities always differ in at least
three places (`sample_identities`), so identities are distinguishable.

An image (`render_image`) places the pedestrian in a camera's scene: a viewpoint (front, back,
left or right side; a backpack is a large block from the back and two straps from the front, an
emblem is only seen from the front), a walking phase, scale and position jitter, a crop of the
camera's background panorama (cams 1-3 share an indoor family of rooms, cams 4-6 are outdoor;
cam3 films cam2's room, as in SYSU-MM01) with random clutter, and the camera's illumination.
Crops are drawn at 2x and box-downsampled (antialiasing); their native size varies per camera
and per image, as real detector crops do. A `CameraView` describes each camera of a layout
(`SYSU_VIEWS`, `REGDB_VIEWS`: one visible/thermal pair filming the same crop, `LLCM_VIEWS`:
nine cameras, each with a low-light visible and an NIR view of one scene).

The modality gap
----------------
Every material has an RGB reflectance and a near-infrared (NIR) reflectance drawn
*independently*. Visible cameras (1, 2, 4, 5) render RGB with a per-camera colour cast and
per-image exposure; infrared cameras (3, 6) render only the NIR reflectance as a grey image
(saved as 3-channel JPEG, like SYSU-MM01's IR images), under active illumination (a bright
vignetted spot, darker distant background), with a different background response (vegetation
bright, sky dark), blur and stronger sensor noise. So colour and brightness do not transfer
across modalities, while shape, proportions, texture patterns, hair, hats and bags do: a model
must learn modality-invariant cues to match an IR query to an RGB gallery. (The option
`nir_luminance_mix` narrows the gap by letting part of each NIR reflectance follow the visible
luminance; the default 0 keeps them independent.)

DJANet's data (`ir_to_visible`, SYSU-MM01 layout only): DJANet trains on SYSU-MM01 with every
infrared image replaced by an offline IR→VIS translation (spec djanet.md §1).
`ir_to_visible="colour_transfer"` makes the stand-in: after generation every cam3/cam6 image
(all ids) becomes `vireid_jax.data.translation.colour_transfer` of itself (its grey level,
standardised, rescaled to the per-channel mean and std of the visible images of the train + val
ids); names, sizes and visible images stay, and the statistics go into the manifest.

Determinism: every random quantity comes from a `numpy.random.Generator` seeded from
(seed, stream, person_id, camera, image number), so the same seed gives byte-identical files,
and adding identities does not change the images of the others. Each layout adds its own offset
to the seed, so two layouts never share identities or scenes (no leak between the datasets of
a cross-dataset experiment); SYSU-MM01's offset is 0. Files are written into a temporary
sibling folder that is renamed when complete.

Usage::

  python -m vireid_jax.data.synthetic --out data/synthetic_sysu --layout sysu --seed 0
  python -m vireid_jax.data.synthetic --out data/synthetic_regdb --layout regdb --num-ids 96
  python -m vireid_jax.data.synthetic --out data/synthetic_llcm --layout llcm
  python -m vireid_jax.data.synthetic --out data/synthetic_sysu_ir2vis --seed 0 \
      --nir-luminance-mix 0.8 --ir-to-visible colour_transfer

Modules
-------
* `common`: seeds and random streams (`stream_rng`, `layout_seed`).
* `identities`: materials, garments, `PersonAttributes`; `sample_person_attributes`,
  `sample_identities`.
* `scenes`: `CameraView`, `SYSU_VIEWS`, the background panoramas of indoor and outdoor scenes.
* `render`: `render_image` (pedestrian drawing, patterns, per-modality shading).
* `output`: option checks, image files, the atomic output folder and the manifest.
* `sysu`, `regdb`, `llcm`: one module per layout (`generate_sysu`, `generate_regdb`,
  `generate_llcm`).
* `generators`: `GENERATORS`, `generate` and `expected_counts`; `cli`: `main`.

NumPy and PIL only, no TensorFlow.
"""

from vireid_jax.data.synthetic.cli import main
from vireid_jax.data.synthetic.common import layout_seed
from vireid_jax.data.synthetic.generators import GENERATORS
from vireid_jax.data.synthetic.generators import expected_counts
from vireid_jax.data.synthetic.generators import generate
from vireid_jax.data.synthetic.identities import BAGS
from vireid_jax.data.synthetic.identities import EMBLEMS
from vireid_jax.data.synthetic.identities import HAIR_STYLES
from vireid_jax.data.synthetic.identities import HATS
from vireid_jax.data.synthetic.identities import LOWER_PATTERNS
from vireid_jax.data.synthetic.identities import LOWER_STYLES
from vireid_jax.data.synthetic.identities import PATTERN_PERIODS
from vireid_jax.data.synthetic.identities import UPPER_PATTERNS
from vireid_jax.data.synthetic.identities import UPPER_STYLES
from vireid_jax.data.synthetic.identities import Garment
from vireid_jax.data.synthetic.identities import Material
from vireid_jax.data.synthetic.identities import PersonAttributes
from vireid_jax.data.synthetic.identities import sample_identities
from vireid_jax.data.synthetic.identities import sample_person_attributes
from vireid_jax.data.synthetic.llcm import LLCM_VIEWS
from vireid_jax.data.synthetic.llcm import generate_llcm
from vireid_jax.data.synthetic.llcm import llcm_file_name
from vireid_jax.data.synthetic.llcm import llcm_image_counts
from vireid_jax.data.synthetic.llcm import llcm_split_ids
from vireid_jax.data.synthetic.output import GENERATOR_VERSION
from vireid_jax.data.synthetic.output import INFO_FILE_NAME
from vireid_jax.data.synthetic.regdb import REGDB_VIEWS
from vireid_jax.data.synthetic.regdb import generate_regdb
from vireid_jax.data.synthetic.regdb import regdb_relative_path
from vireid_jax.data.synthetic.regdb import regdb_trial_ids
from vireid_jax.data.synthetic.render import VIEWS
from vireid_jax.data.synthetic.render import pattern_mask
from vireid_jax.data.synthetic.render import render_image
from vireid_jax.data.synthetic.scenes import SYSU_VIEWS
from vireid_jax.data.synthetic.scenes import CameraView
from vireid_jax.data.synthetic.sysu import IR_TO_VISIBLE
from vireid_jax.data.synthetic.sysu import generate_sysu
from vireid_jax.data.synthetic.sysu import sysu_image_counts
from vireid_jax.data.synthetic.sysu import sysu_split_ids

__all__ = [
    "BAGS",
    "CameraView",
    "EMBLEMS",
    "GENERATORS",
    "GENERATOR_VERSION",
    "Garment",
    "HAIR_STYLES",
    "HATS",
    "INFO_FILE_NAME",
    "IR_TO_VISIBLE",
    "LLCM_VIEWS",
    "LOWER_PATTERNS",
    "LOWER_STYLES",
    "Material",
    "PATTERN_PERIODS",
    "PersonAttributes",
    "REGDB_VIEWS",
    "SYSU_VIEWS",
    "UPPER_PATTERNS",
    "UPPER_STYLES",
    "VIEWS",
    "expected_counts",
    "generate",
    "generate_llcm",
    "generate_regdb",
    "generate_sysu",
    "layout_seed",
    "llcm_file_name",
    "llcm_image_counts",
    "llcm_split_ids",
    "main",
    "pattern_mask",
    "regdb_relative_path",
    "regdb_trial_ids",
    "render_image",
    "sample_identities",
    "sample_person_attributes",
    "sysu_image_counts",
    "sysu_split_ids",
]
