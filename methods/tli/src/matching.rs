//! Graph matching: which teacher layer each student layer takes its tensors from.
//!
//! Works on structural descriptions only ([`graft_core::Backbone::structure`], or
//! [`graft_core::Backbone::describe`] for a spec), so no weights are needed.
//!
//! **Units.** The units of injection are the layers with parameters: dense convs, depthwise
//! convs, grouped convs, BatchNorms (affine weight and bias; running statistics are buffers) and
//! linear layers ([`LayerClass`]). Only units of the same class are ever paired.
//!
//! **Per-unit features.** For a unit `l` of a network:
//! - depth `D(l)`: conv and linear layers on the longest path from the input to `l`, inclusive
//!   (a BatchNorm has the depth of the layer it reads); `D_max` is the network's maximum;
//! - relative position `r(l) = D(l) / D_max`;
//! - cluster `c(l)`: the number of merge layers (add / concat / mul) before `l` in forward order;
//!   with `m = 1 + #merges` clusters, the cluster depth is `Dc = c + 1` and the cluster relative
//!   position `rc = (c + 1) / m`;
//! - cluster signature `σ(C) = [#units in C, max output channels in C, h·w of C's last layer]`.
//!
//! **Pair score.** With `sim(a, b) = min(a, b) / max(a, b)` (1 when both are 0) and the shape
//! similarity `ssim(x, y) = (Π_i sim(x_i, y_i))^(1/n)` (0 for unequal ranks):
//!
//! ```text
//! tensor = W_DEPTH·sim(D_t, D_s)   + W_SHAPE·ssim(shape_t, shape_s) + W_POSITION·(1 − |r_t − r_s|)
//! path   = W_DEPTH·sim(Dc_t, Dc_s) + W_SHAPE·ssim(σ(C_t), σ(C_s))  + W_POSITION·(1 − |rc_t − rc_s|)
//! score  = PATH_WEIGHT·path + (1 − PATH_WEIGHT)·tensor  ∈ [0, 1]
//! ```

use graft_core::backbone::{is_bn_buffer, Layer, LayerKind};

// The level weights in twelfths: a level is computed as `(4·d + 6·s + 2·p) / 12`, which is
// exactly 1 when every similarity is 1 (the sum of the rounded f64 weights is not).
const DEPTH_TWELFTHS: f64 = 4.0;
const SHAPE_TWELFTHS: f64 = 6.0;
const POSITION_TWELFTHS: f64 = 2.0;

/// Weight of the depth similarity in both the tensor-level and the path-level score (paper: 4/12).
pub const W_DEPTH: f64 = DEPTH_TWELFTHS / 12.0;
/// Weight of the shape similarity in both levels (paper: 6/12).
pub const W_SHAPE: f64 = SHAPE_TWELFTHS / 12.0;
/// Weight of the relative-position similarity in both levels (paper: 2/12).
pub const W_POSITION: f64 = POSITION_TWELFTHS / 12.0;
/// Weight of the path-level score in the final score; the tensor level gets the rest (paper: ½).
pub const PATH_WEIGHT: f64 = 0.5;

/// The class of a matchable layer; units are only paired within a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerClass {
    /// A dense convolution (`groups == 1`).
    Conv,
    /// A depthwise convolution (`groups == in_channels > 1`).
    Depthwise,
    /// A grouped convolution that is not depthwise (`1 < groups < in_channels`).
    Grouped,
    /// A BatchNorm (its affine weight and bias move; its running statistics are buffers).
    BatchNorm,
    /// A fully connected layer.
    Linear,
}

impl LayerClass {
    /// The class of a layer, or `None` for layers without parameters (activations, pooling,
    /// merges, the input).
    pub fn of(kind: &LayerKind) -> Option<Self> {
        match kind {
            LayerKind::Conv(c) if c.groups <= 1 => Some(LayerClass::Conv),
            LayerKind::Conv(c) if c.groups == c.in_channels => Some(LayerClass::Depthwise),
            LayerKind::Conv(_) => Some(LayerClass::Grouped),
            LayerKind::BatchNorm => Some(LayerClass::BatchNorm),
            LayerKind::Linear { .. } => Some(LayerClass::Linear),
            _ => None,
        }
    }

    /// A short lowercase name: `conv`, `depthwise`, `grouped`, `bn`, `linear`.
    pub fn name(self) -> &'static str {
        match self {
            LayerClass::Conv => "conv",
            LayerClass::Depthwise => "depthwise",
            LayerClass::Grouped => "grouped",
            LayerClass::BatchNorm => "bn",
            LayerClass::Linear => "linear",
        }
    }
}

/// Whether a layer counts towards the depth `D` (convs of every class and linear layers).
fn counts_for_depth(kind: &LayerKind) -> bool {
    matches!(kind, LayerKind::Conv(_) | LayerKind::Linear { .. })
}

/// One tensor of a unit: its full name, its role within the unit and its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitTensor {
    /// Parameter name (safetensors key), e.g. `layer1.0.conv1.weight`.
    pub name: String,
    /// The name relative to the unit's module (`weight`, `bias`, `running_mean`, `running_var`);
    /// teacher and student tensors are paired by role.
    pub role: String,
    /// Shape.
    pub shape: Vec<usize>,
}

/// A matchable layer ("unit of injection") with the features the pair score reads.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchUnit {
    /// Module name, e.g. `layer1.0.conv1`.
    pub name: String,
    /// What kind of layer it is; only units of the same class are paired.
    pub class: LayerClass,
    /// Index of the layer in the structural description it was read from.
    pub layer: usize,
    /// Shape of the main weight: `[out, in/groups, k, k]` for a conv, `[channels]` for a BN,
    /// `[out, in]` for a linear layer.
    pub weight_shape: Vec<usize>,
    /// The parameters that injection moves: conv weight (and bias), BN weight and bias, linear
    /// weight and bias.
    pub tensors: Vec<UnitTensor>,
    /// BN running statistics (empty for other classes); never matched on their own, copied from
    /// the matched BN only when injection keeps statistics.
    pub buffers: Vec<UnitTensor>,
    /// Depth `D`: conv and linear layers on the longest path from the input, inclusive.
    pub depth: usize,
    /// Relative position `r = D / D_max` in `[0, 1]`.
    pub rel_position: f64,
    /// Cluster index `c`: merge layers before this one in forward order.
    pub cluster: usize,
    /// Cluster depth `Dc = c + 1`.
    pub cluster_depth: usize,
    /// Cluster relative position `rc = (c + 1) / m`, `m` the number of clusters.
    pub cluster_rel_position: f64,
    /// Cluster signature `[units in the cluster, max output channels, h·w of its last layer]`.
    pub cluster_signature: [usize; 3],
}

impl MatchUnit {
    /// The unit's tensor (parameter or BN buffer) with this role, if it has one.
    pub fn tensor(&self, role: &str) -> Option<&UnitTensor> {
        self.tensors.iter().chain(&self.buffers).find(|t| t.role == role)
    }
}

/// The matchable units of a structural description, in forward order, with their depth,
/// position and cluster features.
pub fn match_units(layers: &[Layer]) -> Vec<MatchUnit> {
    let n = layers.len();
    // Depth: a DP over the inputs (layers are in forward order, inputs come earlier).
    let mut depth = vec![0usize; n];
    for (i, l) in layers.iter().enumerate() {
        let base = l.inputs.iter().filter(|&&j| j < i).map(|&j| depth[j]).max().unwrap_or(0);
        depth[i] = base + usize::from(counts_for_depth(&l.kind));
    }
    let d_max = depth.iter().copied().max().unwrap_or(0);
    // Clusters: the number of merges seen before each layer.
    let mut cluster = vec![0usize; n];
    let mut merges = 0;
    for (i, l) in layers.iter().enumerate() {
        cluster[i] = merges;
        if l.is_merge() {
            merges += 1;
        }
    }
    let m = merges + 1;
    // Cluster signatures.
    let mut units_in = vec![0usize; m];
    let mut max_channels = vec![0usize; m];
    let mut last_hw = vec![1usize; m];
    for (i, l) in layers.iter().enumerate() {
        let c = cluster[i];
        units_in[c] += usize::from(LayerClass::of(&l.kind).is_some());
        max_channels[c] = max_channels[c].max(l.output_shape.first().copied().unwrap_or(0));
        last_hw[c] = l.output_shape.iter().skip(1).product();
    }
    layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let class = LayerClass::of(&l.kind)?;
            let weight_shape = match &l.kind {
                LayerKind::Conv(c) => c.weight_shape().to_vec(),
                LayerKind::Linear { in_features, out_features } => vec![*out_features, *in_features],
                _ => vec![l.output_shape.first().copied().unwrap_or(0)],
            };
            let prefix = format!("{}.", l.name);
            let (buffers, tensors): (Vec<UnitTensor>, Vec<UnitTensor>) = l
                .params
                .iter()
                .map(|(name, shape)| UnitTensor {
                    name: name.clone(),
                    role: name.strip_prefix(&prefix).unwrap_or(name).to_string(),
                    shape: shape.clone(),
                })
                .partition(|t| is_bn_buffer(&t.name));
            let c = cluster[i];
            Some(MatchUnit {
                name: l.name.clone(),
                class,
                layer: i,
                weight_shape,
                tensors,
                buffers,
                depth: depth[i],
                rel_position: if d_max == 0 { 0.0 } else { depth[i] as f64 / d_max as f64 },
                cluster: c,
                cluster_depth: c + 1,
                cluster_rel_position: (c + 1) as f64 / m as f64,
                cluster_signature: [units_in[c], max_channels[c], last_hw[c]],
            })
        })
        .collect()
}

/// `min(a, b) / max(a, b)` for non-negative numbers; 1 when both are 0.
pub fn similarity(a: f64, b: f64) -> f64 {
    if a == b {
        1.0
    } else {
        a.min(b) / a.max(b)
    }
}

/// Geometric mean over dimensions of [`similarity`] of two shapes; 0 for unequal ranks, 1 for
/// two empty shapes.
pub fn shape_similarity(a: &[usize], b: &[usize]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    if a.is_empty() {
        return 1.0;
    }
    let product: f64 = a.iter().zip(b).map(|(&x, &y)| similarity(x as f64, y as f64)).product();
    product.powf(1.0 / a.len() as f64)
}

/// `W_DEPTH·depth + W_SHAPE·shape + W_POSITION·position`, computed in twelfths.
fn level(depth: f64, shape: f64, position: f64) -> f64 {
    (DEPTH_TWELFTHS * depth + SHAPE_TWELFTHS * shape + POSITION_TWELFTHS * position) / 12.0
}

/// The tensor-level similarity of two units, in `[0, 1]`:
/// `W_DEPTH·sim(D_t, D_s) + W_SHAPE·ssim(shape_t, shape_s) + W_POSITION·(1 − |r_t − r_s|)`.
pub fn tensor_level(t: &MatchUnit, s: &MatchUnit) -> f64 {
    level(
        similarity(t.depth as f64, s.depth as f64),
        shape_similarity(&t.weight_shape, &s.weight_shape),
        1.0 - (t.rel_position - s.rel_position).abs(),
    )
}

/// The path-level similarity of two units (that of their clusters), in `[0, 1]`:
/// `W_DEPTH·sim(Dc_t, Dc_s) + W_SHAPE·ssim(σ(C_t), σ(C_s)) + W_POSITION·(1 − |rc_t − rc_s|)`.
pub fn path_level(t: &MatchUnit, s: &MatchUnit) -> f64 {
    level(
        similarity(t.cluster_depth as f64, s.cluster_depth as f64),
        shape_similarity(&t.cluster_signature, &s.cluster_signature),
        1.0 - (t.cluster_rel_position - s.cluster_rel_position).abs(),
    )
}

/// The score in `[0, 1]` of teacher unit `t` for student unit `s`:
/// `PATH_WEIGHT·path_level + (1 − PATH_WEIGHT)·tensor_level`; 0 when the classes differ.
/// A unit compared with itself (same network) scores exactly 1.
pub fn pair_score(t: &MatchUnit, s: &MatchUnit) -> f64 {
    if t.class != s.class {
        return 0.0;
    }
    PATH_WEIGHT * path_level(t, s) + (1.0 - PATH_WEIGHT) * tensor_level(t, s)
}

/// One teacher unit a student unit could take its tensors from.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Index into [`Matching::teacher`].
    pub teacher: usize,
    /// [`pair_score`] of that teacher unit for the student unit.
    pub score: f64,
}

/// The ranked candidates of one student unit.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitMatch {
    /// Index into [`Matching::student`].
    pub student: usize,
    /// Every teacher unit of the same class, best first. Ties in score go to the teacher unit
    /// whose place in its network's unit order is closest to the student's (so identical
    /// networks match unit to unit), then to the lower teacher index.
    pub candidates: Vec<Candidate>,
}

/// A teacher tensor a student tensor takes its value from.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSource {
    /// Index into [`Matching::teacher`] of the unit it belongs to.
    pub teacher_unit: usize,
    /// Teacher parameter name.
    pub teacher: String,
    /// Its shape.
    pub teacher_shape: Vec<usize>,
    /// The score of its unit for the student unit.
    pub score: f64,
}

/// What one student tensor takes from the teacher under the best match.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorPair {
    /// Index into [`Matching::student`] of the unit it belongs to.
    pub student_unit: usize,
    /// Student parameter name.
    pub student: String,
    /// Its shape.
    pub student_shape: Vec<usize>,
    /// The teacher parameter of the same role in the best-matching teacher unit; `None` when
    /// the student unit has no same-class teacher unit or that unit lacks the role (a conv bias).
    pub teacher: Option<String>,
    /// The teacher parameter's shape.
    pub teacher_shape: Option<Vec<usize>>,
    /// The best match's score; 0 when unmatched.
    pub score: f64,
}

/// The matching of a teacher network onto a student network.
#[derive(Clone, Debug, PartialEq)]
pub struct Matching {
    /// The teacher's units in forward order.
    pub teacher: Vec<MatchUnit>,
    /// The student's units in forward order.
    pub student: Vec<MatchUnit>,
    /// One entry per student unit, in the same order as [`Matching::student`].
    pub matches: Vec<UnitMatch>,
}

impl Matching {
    /// The best candidate of student unit `student` (index into [`Matching::student`]); `None`
    /// when no teacher unit has its class (or the index is out of range).
    pub fn best(&self, student: usize) -> Option<&Candidate> {
        self.matches.get(student)?.candidates.first()
    }

    /// The teacher tensors with role `role` (`weight`, `bias`, `running_mean`, ...) among the top
    /// `top_k` candidates of student unit `student`, best first. Candidates lacking the role are
    /// dropped, not replaced by lower-ranked ones, so `top_k = 1` gives the best unit's tensor or
    /// nothing.
    pub fn sources(&self, student: usize, role: &str, top_k: usize) -> Vec<TensorSource> {
        let Some(m) = self.matches.get(student) else { return Vec::new() };
        m.candidates
            .iter()
            .take(top_k)
            .filter_map(|c| {
                let t = self.teacher[c.teacher].tensor(role)?;
                Some(TensorSource {
                    teacher_unit: c.teacher,
                    teacher: t.name.clone(),
                    teacher_shape: t.shape.clone(),
                    score: c.score,
                })
            })
            .collect()
    }

    /// For every student parameter that injection moves (conv weight and bias, BN weight and
    /// bias, linear weight and bias; not BN running statistics), in forward order: the teacher
    /// tensor of the same role in the best-matching unit, or `None`.
    pub fn tensor_pairs(&self) -> Vec<TensorPair> {
        let mut out = Vec::new();
        for (su, unit) in self.student.iter().enumerate() {
            for t in &unit.tensors {
                let best = self.sources(su, &t.role, 1).into_iter().next();
                out.push(TensorPair {
                    student_unit: su,
                    student: t.name.clone(),
                    student_shape: t.shape.clone(),
                    teacher: best.as_ref().map(|b| b.teacher.clone()),
                    teacher_shape: best.as_ref().map(|b| b.teacher_shape.clone()),
                    score: best.map_or(0.0, |b| b.score),
                });
            }
        }
        out
    }
}

/// Position of unit `i` of `n` in its network's unit order, in `(0, 1)`.
fn order_position(i: usize, n: usize) -> f64 {
    (i as f64 + 0.5) / n as f64
}

/// Matches the units of `teacher` onto those of `student` (both structural descriptions):
/// every same-class teacher unit is a candidate for a student unit, ranked by [`pair_score`].
pub fn match_layers(teacher: &[Layer], student: &[Layer]) -> Matching {
    let teacher = match_units(teacher);
    let student = match_units(student);
    let (nt, ns) = (teacher.len(), student.len());
    let matches = student
        .iter()
        .enumerate()
        .map(|(si, s)| {
            let mut ranked: Vec<(Candidate, f64)> = teacher
                .iter()
                .enumerate()
                .filter(|(_, t)| t.class == s.class)
                .map(|(ti, t)| {
                    let order_gap = (order_position(ti, nt) - order_position(si, ns)).abs();
                    (Candidate { teacher: ti, score: pair_score(t, s) }, order_gap)
                })
                .collect();
            ranked.sort_by(|(a, ga), (b, gb)| {
                b.score.total_cmp(&a.score).then(ga.total_cmp(gb)).then(a.teacher.cmp(&b.teacher))
            });
            UnitMatch { student: si, candidates: ranked.into_iter().map(|(c, _)| c).collect() }
        })
        .collect();
    Matching { teacher, student, matches }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
    use graft_core::Backbone;

    fn layers(arch: &str, input: (usize, usize, usize)) -> Vec<Layer> {
        let spec =
            BackboneSpec { arch: arch.parse::<Arch>().unwrap(), input: InputSpec::new(input.0, input.1, input.2), num_classes: 10 };
        Backbone::describe(&spec).unwrap().1
    }

    #[test]
    fn similarities_by_hand() {
        assert_eq!(similarity(2.0, 8.0), 0.25);
        assert_eq!(similarity(8.0, 2.0), 0.25);
        assert_eq!(similarity(0.0, 0.0), 1.0);
        assert_eq!(similarity(0.0, 3.0), 0.0);
        // sqrt(0.5 · 0.5) = 0.5
        assert!((shape_similarity(&[4, 2], &[8, 4]) - 0.5).abs() < 1e-12);
        // cube root of (1 · 0.25 · 0.5) = 0.5
        assert!((shape_similarity(&[3, 4, 2], &[3, 1, 4]) - 0.5).abs() < 1e-12);
        assert_eq!(shape_similarity(&[3, 3], &[3, 3, 1]), 0.0);
        assert_eq!(shape_similarity(&[5, 6], &[5, 6]), 1.0);
    }

    #[test]
    fn resnet_cifar_units_depths_and_clusters_by_hand() {
        // resnet-cifar-8: stem conv, 3 stages of 1 basic block (stages 2, 3 with a downsample).
        let units = match_units(&layers("resnet-cifar-8-w4", (1, 16, 16)));
        let get = |name: &str| units.iter().find(|u| u.name == name).unwrap_or_else(|| panic!("no unit {name}"));
        // 8 convs + 1 linear = 9 depth steps on the longest path: conv1, 2 per block, fc.
        let fc = get("fc");
        assert_eq!(fc.class, LayerClass::Linear);
        assert_eq!(fc.depth, 8);
        assert_eq!(fc.rel_position, 1.0);
        assert_eq!(fc.weight_shape, vec![10, 16]);
        let stem = get("conv1");
        assert_eq!((stem.depth, stem.cluster, stem.cluster_depth), (1, 0, 1));
        assert_eq!(stem.weight_shape, vec![4, 1, 3, 3]);
        assert_eq!(stem.tensors.iter().map(|t| t.role.as_str()).collect::<Vec<_>>(), ["weight"]);
        let bn = get("bn1");
        assert_eq!(bn.class, LayerClass::BatchNorm);
        assert_eq!(bn.depth, 1, "a BN has the depth of the conv it reads");
        assert_eq!(bn.tensors.iter().map(|t| t.role.as_str()).collect::<Vec<_>>(), ["weight", "bias"]);
        assert_eq!(bn.buffers.iter().map(|t| t.role.as_str()).collect::<Vec<_>>(), ["running_mean", "running_var"]);
        // Three residual adds → 4 clusters. Cluster 0 = stem + first block (up to its add).
        assert_eq!(fc.cluster, 3);
        assert_eq!(fc.cluster_rel_position, 1.0);
        assert_eq!(stem.cluster_rel_position, 0.25);
        // Cluster 0: conv1, bn1, 2 convs + 2 BNs = 6 units, 4 channels, 16x16 at the add.
        assert_eq!(stem.cluster_signature, [6, 4, 256]);
        // The second block's units are in cluster 1, with its downsample: 6 units, 8 ch, 8x8.
        let b2 = units.iter().filter(|u| u.cluster == 1).collect::<Vec<_>>();
        assert_eq!(b2.len(), 6);
        assert_eq!(b2[0].cluster_signature, [6, 8, 64]);
        // The downsample conv reads the block input: same depth as the block's first conv.
        let ds = b2.iter().find(|u| u.class == LayerClass::Conv && u.weight_shape[2] == 1).unwrap();
        let c1 = b2.iter().find(|u| u.class == LayerClass::Conv).unwrap();
        assert_eq!(ds.depth, c1.depth);
        assert_eq!(c1.depth, 4);
        // The last cluster: relu, pool, fc after the last add; 1 unit, 16 channels (relu), flat.
        assert_eq!(fc.cluster_signature, [1, 16, 1]);
    }

    #[test]
    fn pair_score_by_hand() {
        let units = match_units(&layers("resnet-cifar-8-w4", (1, 16, 16)));
        for u in &units {
            assert_eq!(pair_score(u, u), 1.0, "{}", u.name);
        }
        // Stem conv vs the first conv of block 0 (same cluster 0): depths 1 and 2, shapes
        // [4,1,3,3] vs [4,4,3,3] → ssim = (1·0.25·1·1)^(1/4), positions 1/8 and 2/8.
        let t = units.iter().find(|u| u.name == "conv1").unwrap();
        let s = units.iter().find(|u| u.class == LayerClass::Conv && u.depth == 2).unwrap();
        let tensor = 4.0 / 12.0 * 0.5 + 6.0 / 12.0 * 0.25f64.powf(0.25) + 2.0 / 12.0 * (1.0 - 1.0 / 8.0);
        let path = 1.0;
        let expected = 0.5 * path + 0.5 * tensor;
        assert!((pair_score(t, s) - expected).abs() < 1e-12, "{} vs {expected}", pair_score(t, s));
        // Different classes never score.
        let bn = units.iter().find(|u| u.class == LayerClass::BatchNorm).unwrap();
        assert_eq!(pair_score(bn, t), 0.0);
    }

    #[test]
    fn identical_networks_match_unit_to_unit() {
        let l = layers("resnet-cifar-8-w4", (1, 16, 16));
        let m = match_layers(&l, &l);
        for (i, um) in m.matches.iter().enumerate() {
            let best = m.best(i).unwrap();
            assert_eq!(best.teacher, i, "{} matched {}", m.student[i].name, m.teacher[best.teacher].name);
            assert_eq!(best.score, 1.0);
            assert!(um.candidates.windows(2).all(|w| w[0].score >= w[1].score));
        }
        for p in m.tensor_pairs() {
            assert_eq!(p.teacher.as_deref(), Some(p.student.as_str()));
            assert_eq!(p.score, 1.0);
        }
    }

    #[test]
    fn depthwise_units_match_only_depthwise() {
        let mb = layers("mobilenetv2-0.25", (3, 32, 32));
        let rn = layers("resnet-cifar-8-w4", (3, 32, 32));
        let m = match_layers(&rn, &mb);
        let dw: Vec<usize> = (0..m.student.len()).filter(|&i| m.student[i].class == LayerClass::Depthwise).collect();
        assert!(!dw.is_empty());
        for &i in &dw {
            assert!(m.best(i).is_none(), "resnet has no depthwise conv");
        }
        let m = match_layers(&mb, &mb);
        for &i in &dw {
            let best = m.best(i).unwrap();
            assert_eq!(m.teacher[best.teacher].class, LayerClass::Depthwise);
            assert!(m.matches[i].candidates.iter().all(|c| m.teacher[c.teacher].class == LayerClass::Depthwise));
        }
    }

    #[test]
    fn conv_bias_without_teacher_bias_is_unmatched() {
        // VGG convs have a bias, ResNet convs do not.
        let vgg = layers("vgg11-bn-d16-p1", (3, 32, 32));
        let rn = layers("resnet-cifar-8-w4", (3, 32, 32));
        let m = match_layers(&rn, &vgg);
        let pairs = m.tensor_pairs();
        let conv_bias: Vec<&TensorPair> =
            pairs.iter().filter(|p| m.student[p.student_unit].class == LayerClass::Conv && p.student.ends_with(".bias")).collect();
        assert!(!conv_bias.is_empty());
        assert!(conv_bias.iter().all(|p| p.teacher.is_none() && p.score == 0.0));
        let conv_weight: Vec<&TensorPair> =
            pairs.iter().filter(|p| m.student[p.student_unit].class == LayerClass::Conv && p.student.ends_with(".weight")).collect();
        assert!(conv_weight.iter().all(|p| p.teacher.is_some() && p.score > 0.0));
    }
}
