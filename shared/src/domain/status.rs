//! The run lifecycle. `RunStatus::can_become` is the one place that says which
//! transitions are legal; the stores enforce it with compare-and-set.
use super::named_enum;

named_enum! {
    /// Where a run is in its life.
    pub enum RunStatus: "run status" {
        Pending => "pending",
        Running => "running",
        AwaitingApproval => "awaiting_approval",
        Published => "published",
        Failed => "failed",
        Rejected => "rejected",
        Cancelled => "cancelled",
        TimedOut => "timed_out",
    }
}

impl RunStatus {
    /// A terminal run never changes status again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Published | Self::Failed | Self::Rejected | Self::Cancelled | Self::TimedOut
        )
    }

    /// The legal transitions:
    /// `pending → running`; `running ⇄ awaiting_approval`; `running → published`;
    /// `awaiting_approval → rejected`; and any live run may fail, be cancelled
    /// or time out.
    pub fn can_become(self, next: RunStatus) -> bool {
        use RunStatus::*;
        match (self, next) {
            (from, _) if from.is_terminal() => false,
            (_, Failed | Cancelled | TimedOut) => true,
            (Pending, Running) => true,
            (Running, AwaitingApproval | Published) => true,
            (AwaitingApproval, Running | Rejected) => true,
            _ => false,
        }
    }

    /// Whether a run in this status may be redriven: continued, by a new
    /// execution, from the state that failed. Only a failed run may, and
    /// the redrive is the one way out of a terminal status
    /// (`Transition::redrive`), which `can_become` does not list.
    pub fn can_be_redriven(self) -> bool {
        self == Self::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::RunStatus::{self, *};

    #[test]
    fn terminal_states_are_final() {
        for from in RunStatus::ALL.iter().filter(|s| s.is_terminal()) {
            for to in RunStatus::ALL {
                assert!(!from.can_become(*to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_happy_path_and_the_gate_loop_are_legal() {
        assert!(Pending.can_become(Running));
        assert!(Running.can_become(AwaitingApproval));
        assert!(AwaitingApproval.can_become(Running));
        assert!(Running.can_become(Published));
        assert!(AwaitingApproval.can_become(Rejected));
    }

    #[test]
    fn shortcuts_are_refused() {
        assert!(!Pending.can_become(Published));
        assert!(!Pending.can_become(AwaitingApproval));
        assert!(!Running.can_become(Rejected));
        assert!(!Running.can_become(Pending));
        assert!(!Running.can_become(Running));
    }

    #[test]
    fn only_a_failed_run_is_redriven() {
        let redrivable: Vec<_> = RunStatus::ALL
            .iter()
            .filter(|s| s.can_be_redriven())
            .collect();
        assert_eq!(redrivable, [&Failed]);
        assert!(
            !Failed.can_become(Running),
            "not through an ordinary change"
        );
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), *status);
        }
        assert!("done".parse::<RunStatus>().is_err());
    }
}
