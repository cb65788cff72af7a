//! What the system notification shows while the page is in the background: a pure policy over
//! the call's [`Alert`] and the page's visibility, so it is tested natively; `client/notify.rs`
//! only carries out the [`Change`]s.

use crate::call::Alert;

/// The notification state of the page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notifier {
    /// What the notification on screen is about.
    shown: Option<Alert>,
    /// A missed call the user has seen on the page: not notified again.
    seen: Option<Alert>,
}

/// What to do with the system notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Keep,
    Close,
    /// Show this one (replacing any notification already up).
    Show(Alert),
}

impl Notifier {
    /// A notification is up while there is an alert and the page is hidden: an incoming call
    /// (also when the page is hidden during the ringing) until it stops ringing, then a missed
    /// call until the page is looked at. A missed call once seen is not notified again.
    pub fn update(&mut self, alert: Option<Alert>, hidden: bool) -> Change {
        if self.seen != alert {
            self.seen = None;
        }
        if !hidden && matches!(alert, Some(Alert::Missed(_))) {
            self.seen = alert.clone();
        }
        let wanted = alert.filter(|_| hidden && self.seen.is_none());
        if wanted == self.shown {
            return Change::Keep;
        }
        self.shown = wanted.clone();
        match wanted {
            Some(alert) => Change::Show(alert),
            None => Change::Close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming() -> Option<Alert> {
        Some(Alert::Incoming("bob".into()))
    }
    fn missed() -> Option<Alert> {
        Some(Alert::Missed("bob".into()))
    }

    #[test]
    fn only_while_hidden() {
        let mut n = Notifier::default();
        assert_eq!(
            n.update(incoming(), false),
            Change::Keep,
            "in view: the sheet is enough"
        );
        assert_eq!(
            n.update(incoming(), true),
            Change::Show(Alert::Incoming("bob".into()))
        );
        assert_eq!(n.update(incoming(), true), Change::Keep, "once per call");
        assert_eq!(n.update(incoming(), false), Change::Close, "looked at");
        assert_eq!(
            n.update(incoming(), true),
            Change::Show(Alert::Incoming("bob".into()))
        );
        assert_eq!(
            n.update(None, true),
            Change::Close,
            "answered elsewhere, declined"
        );
    }

    #[test]
    fn a_missed_call_replaces_the_ringing_one_and_is_not_repeated_once_seen() {
        let mut n = Notifier::default();
        n.update(incoming(), true);
        assert_eq!(
            n.update(missed(), true),
            Change::Show(Alert::Missed("bob".into()))
        );
        assert_eq!(n.update(missed(), false), Change::Close);
        assert_eq!(n.update(missed(), true), Change::Keep, "seen");
        // The same person calls again and gives up again: that is news.
        n.update(incoming(), true);
        assert_eq!(
            n.update(missed(), true),
            Change::Show(Alert::Missed("bob".into()))
        );
    }

    #[test]
    fn a_missed_call_that_happened_in_view_is_never_notified() {
        let mut n = Notifier::default();
        n.update(incoming(), false);
        assert_eq!(n.update(missed(), false), Change::Keep);
        assert_eq!(n.update(missed(), true), Change::Keep);
    }
}
