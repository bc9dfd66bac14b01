//! `engine = "server"` needs the cluster's `_reindex` and painless (its
//! script tags every copied document with version 0). Some distributions
//! ship without either module; stage 1 is refused there rather than
//! failing the copy after the write alias has moved.

use super::{Finding, Level};
use crate::es::{Availability, ServerCopySupport};

/// Findings for the server engine; none when it is not configured.
pub(super) fn server_copy(support: Option<&ServerCopySupport>) -> Vec<Finding> {
    let Some(support) = support else {
        return Vec::new();
    };
    let needs = [
        ("_reindex", "the reindex module", &support.reindex),
        ("painless", "the lang-painless module", &support.painless),
    ];
    needs
        .into_iter()
        .filter_map(|(feature, module, available)| match available {
            Availability::Yes => None,
            Availability::No => Some(Finding::new(
                Level::Refuse,
                "server_engine_unavailable",
                format!(
                    "engine = \"server\" needs {feature}, and this cluster has no {module}; \
                     use engine = \"client\" (the default), which needs neither"
                ),
            )),
            Availability::Unknown(reason) => Some(Finding::new(
                Level::Warn,
                "server_engine_unverified",
                format!(
                    "engine = \"server\" needs {feature}; could not check that this cluster has it: {reason}"
                ),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support(reindex: Availability, painless: Availability) -> ServerCopySupport {
        ServerCopySupport { reindex, painless }
    }

    #[test]
    fn client_engine_needs_nothing() {
        assert!(server_copy(None).is_empty());
    }

    #[test]
    fn refuses_each_missing_module() {
        assert!(server_copy(Some(&support(Availability::Yes, Availability::Yes))).is_empty());
        let f = server_copy(Some(&support(Availability::Yes, Availability::No)));
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].level, f[0].code),
            (Level::Refuse, "server_engine_unavailable")
        );
        assert!(f[0].message.contains("painless"), "{}", f[0].message);
        let f = server_copy(Some(&support(Availability::No, Availability::No)));
        assert_eq!(f.len(), 2);
        assert!(f[0].message.contains("_reindex"), "{}", f[0].message);
    }

    #[test]
    fn warns_when_it_cannot_tell() {
        let f = server_copy(Some(&support(
            Availability::Unknown("403 unauthorized".into()),
            Availability::Yes,
        )));
        assert_eq!(
            (f[0].level, f[0].code),
            (Level::Warn, "server_engine_unverified")
        );
        assert!(f[0].message.contains("403 unauthorized"));
    }
}
