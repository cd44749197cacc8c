//! A secret config value (signing secrets, OAuth2 client secrets): serialized as itself so a
//! config round-trips, printed as `<redacted>` so a config logged for debugging leaks nothing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_value() {
        let secret = Secret("whsec_c2VjcmV0".into());
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(
            serde_yaml::to_string(&secret).unwrap().trim(),
            "whsec_c2VjcmV0"
        );
    }
}
