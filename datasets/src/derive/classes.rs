//! Class subsets with relabelling, and superclass grouping.

use super::check_set;
use crate::error::{DatasetError, Result};
use graft_core::ImageSet;
use std::collections::HashMap;

/// Keeps the images whose label is in `classes` and relabels them `0..k` in the order given
/// (`classes[0]` becomes 0). Errors when `classes` is empty or holds a class twice.
pub fn select_classes(set: &ImageSet, classes: &[u32]) -> Result<ImageSet> {
    let groups: Vec<Vec<u32>> = classes.iter().map(|&c| vec![c]).collect();
    if classes.is_empty() {
        return Err(DatasetError::derive("select_classes", "no class given"));
    }
    regroup(set, &groups, "select_classes")
}

/// Relabels every image with the index of the group holding its class (`groups[g]` becomes
/// label `g`); images of classes in no group are dropped. Errors when there is no group, a group
/// is empty, or a class is in more than one group.
pub fn group_classes(set: &ImageSet, groups: &[Vec<u32>]) -> Result<ImageSet> {
    regroup(set, groups, "group_classes")
}

fn regroup(set: &ImageSet, groups: &[Vec<u32>], op: &'static str) -> Result<ImageSet> {
    check_set(set, op)?;
    if groups.is_empty() {
        return Err(DatasetError::derive(op, "no group given"));
    }
    let mut map = HashMap::new();
    for (g, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(DatasetError::derive(op, format!("group {g} is empty")));
        }
        for &c in group {
            if let Some(prev) = map.insert(c, g as u32) {
                let msg = if prev as usize == g {
                    format!("class {c} is listed twice in group {g}")
                } else {
                    format!("class {c} is in group {prev} and in group {g}")
                };
                return Err(DatasetError::derive(op, msg));
            }
        }
    }
    let keep: Vec<usize> = (0..set.len())
        .filter(|&i| map.contains_key(&set.labels[i]))
        .collect();
    let mut out = set.subset(&keep);
    for l in &mut out.labels {
        *l = map[l];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(labels: &[u32]) -> ImageSet {
        let images = labels.iter().map(|&l| l as f32 / 10.0).collect();
        ImageSet::new(images, labels.to_vec(), 1, 1, 1).unwrap()
    }

    #[test]
    fn select_relabels_in_given_order() {
        let s = set(&[0, 1, 2, 3, 4, 5, 3, 5]);
        let out = select_classes(&s, &[5, 3]).unwrap();
        assert_eq!(out.labels, vec![1, 0, 1, 0]);
        // Pixels follow their images: the kept images are 3, 5, 3, 5 (values 0.3, 0.5...).
        assert_eq!(out.images, vec![0.3, 0.5, 0.3, 0.5]);
        assert!(select_classes(&s, &[3, 3])
            .unwrap_err()
            .to_string()
            .contains("class 3"));
        assert!(select_classes(&s, &[]).is_err());
    }

    #[test]
    fn group_maps_to_group_index_and_drops_others() {
        let s = set(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let out = group_classes(&s, &[vec![0, 2, 4, 6], vec![5, 7, 9]]).unwrap();
        assert_eq!(out.labels, vec![0, 0, 0, 1, 0, 1, 1]);
        assert_eq!(out.len(), 7);
        let err = group_classes(&s, &[vec![1], vec![]])
            .unwrap_err()
            .to_string();
        assert!(err.contains("group 1 is empty"), "{err}");
        let err = group_classes(&s, &[vec![1, 2], vec![2]])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("class 2 is in group 0 and in group 1"),
            "{err}"
        );
    }
}
