//! Files by file name, as a view serves them (`packages/{file}`, `src/contrib/{file}`), patched
//! from the previous view's index when the names a step touched collide with nothing. The map is
//! persistent (`imbl`): a patch shares all but the touched paths with the previous index, so a
//! step costs what it changed, not the repository's size.

use std::sync::Arc;

use imbl::HashMap;

use crate::store::PackageFile;

/// Which file a name gets when two files claim it: the full build's rule, kept by every build.
#[derive(Debug, Clone, Copy)]
pub(super) enum Claim {
    FirstWins,
    LastWins,
}

/// File name → file, and whether two files ever claimed one name.
#[derive(Debug, Default)]
pub(super) struct FileIndex {
    map: HashMap<Arc<str>, Arc<PackageFile>>,
    /// Which file holds a contested name depends on the order of the whole build: such an
    /// index is rebuilt, never patched.
    contested: bool,
}

impl FileIndex {
    /// From every file, in the order the rule is stated in.
    pub(super) fn build<'a>(
        files: impl IntoIterator<Item = &'a Arc<PackageFile>>,
        claim: Claim,
    ) -> Self {
        let mut index = Self::default();
        for file in files {
            match index.map.entry(Arc::from(file.filename.as_str())) {
                imbl::hashmap::Entry::Vacant(slot) => {
                    slot.insert(Arc::clone(file));
                }
                imbl::hashmap::Entry::Occupied(mut slot) => {
                    index.contested = true;
                    if let Claim::LastWins = claim {
                        slot.insert(Arc::clone(file));
                    }
                }
            }
        }
        index
    }

    /// This index without `removed` and with `added` — or `None` when a name is contested
    /// (before or after), where only a full build knows which file holds it. Without contest,
    /// every name has one file, whatever the order: the patch is what a build would give.
    pub(super) fn patched(
        &self,
        removed: &[Arc<PackageFile>],
        added: &[Arc<PackageFile>],
    ) -> Option<Self> {
        if self.contested {
            return None;
        }
        let mut map = self.map.clone();
        for file in removed {
            match map.get(file.filename.as_str()) {
                Some(held) if Arc::ptr_eq(held, file) => {
                    map.remove(file.filename.as_str());
                }
                _ => return None,
            }
        }
        for file in added {
            if map
                .insert(Arc::from(file.filename.as_str()), Arc::clone(file))
                .is_some()
            {
                return None;
            }
        }
        Some(Self {
            map,
            contested: false,
        })
    }

    pub(super) fn get(&self, filename: &str) -> Option<&PackageFile> {
        self.map.get(filename).map(|f| f.as_ref())
    }

    pub(super) fn files(&self) -> impl Iterator<Item = &PackageFile> {
        self.map.values().map(|f| f.as_ref())
    }
}
