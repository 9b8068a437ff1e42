//! Learned binary codes for bitseek: trains the recurrent binarizer of BEBR (Gan et al., KDD 2023)
//! embedding-to-embedding on candle and exports it as the plain-Rust encoder
//! ([`bitseek_codes::quantizer::Learned`]) that indexes and queries use.
//!
//! * [`model`]: the binarizer (MLPs `Linear → BatchNorm → ReLU → Linear`, residual planes with
//!   weights `2^-k`, optional learned per-dimension scales), its export with batch norm folded;
//!   the Xavier start or the rotation start (exactly RaBitQ's rotation and sign, untrained).
//! * [`estimator`]: gradients through `sign` — clipped STE, ReSTE, BiPer.
//! * [`loss`]: symmetric InfoNCE on the cosine of codes, hardest-k negatives, same-group masking;
//!   listwise distillation of the float cosine ranking (label-free).
//! * [`augment`]: RACS representation-level augmentation.
//! * [`data`]: `pairs.npz` and `neighbors` training data.
//! * [`train`]: the loop, early stopping, compatible (cross-version) training.
//! * [`head`]: a float head (two residual MLPs) on a frozen model, trained with InfoNCE/RACS.
//! * [`rotation`]: RaBitQ's own rotation learned without labels (ITQ, or distillation through
//!   RaBitQ's estimator), so the codes keep RaBitQ's per-vector factors.
//! * [`ksh`]: kernelized supervised hashing, a learned baseline without backpropagation.
//! * [`eval`]: ranks and MRR through the quantizers' own scoring; recall@k against exact float.

pub mod augment;
pub mod data;
pub mod estimator;
pub mod eval;
pub mod head;
pub mod ksh;
pub mod loss;
pub mod model;
pub mod rotation;
pub mod train;

pub use augment::Augment;
pub use estimator::Estimator;
pub use model::{Init, Norm};
pub use train::{train, Objective, TrainConfig, TrainData, Trained, ValMetric};
