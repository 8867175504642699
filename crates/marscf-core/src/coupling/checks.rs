//! What every coupling checks of its sizes.

use crate::CoreError;

/// Checks what every coupling needs: positive, even `channels` and a positive `hidden`.
pub(crate) fn check_coupling_sizes(
    layer: &'static str,
    channels: usize,
    hidden: usize,
) -> Result<(), CoreError> {
    if channels == 0 {
        return Err(CoreError::ZeroSize {
            what: "coupling channels",
        });
    }
    if hidden == 0 {
        return Err(CoreError::ZeroSize {
            what: "coupling hidden width",
        });
    }
    if !channels.is_multiple_of(2) {
        return Err(CoreError::OddChannels { layer, channels });
    }
    Ok(())
}
