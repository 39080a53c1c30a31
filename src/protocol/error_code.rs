//! Kafka's error codes: one table of (name, code, retriable), as every Kafka client knows them.
//!
//! An error code is a value written into a response, never a Rust error propagated with `?`.

macro_rules! error_codes {
    ($($name:ident = $code:expr, $retriable:expr;)*) => {
        /// A Kafka protocol error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i16)]
        pub enum ErrorCode {
            $($name = $code,)*
        }

        impl ErrorCode {
            pub fn code(self) -> i16 {
                self as i16
            }

            /// Whether a client may retry the request unchanged.
            pub fn is_retriable(self) -> bool {
                match self {
                    $(ErrorCode::$name => $retriable,)*
                }
            }

            pub fn from_code(code: i16) -> Option<ErrorCode> {
                match code {
                    $($code => Some(ErrorCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    UnknownServerError = -1, false;
    None = 0, false;
    OffsetOutOfRange = 1, false;
    CorruptMessage = 2, true;
    UnknownTopicOrPartition = 3, true;
    InvalidFetchSize = 4, false;
    LeaderNotAvailable = 5, true;
    NotLeaderOrFollower = 6, true;
    RequestTimedOut = 7, true;
    MessageTooLarge = 10, false;
    OffsetMetadataTooLarge = 12, false;
    NetworkException = 13, true;
    CoordinatorLoadInProgress = 14, true;
    CoordinatorNotAvailable = 15, true;
    NotCoordinator = 16, true;
    InvalidTopicException = 17, false;
    RecordListTooLarge = 18, false;
    NotEnoughReplicas = 19, true;
    NotEnoughReplicasAfterAppend = 20, true;
    InvalidRequiredAcks = 21, false;
    IllegalGeneration = 22, false;
    InconsistentGroupProtocol = 23, false;
    InvalidGroupId = 24, false;
    UnknownMemberId = 25, false;
    InvalidSessionTimeout = 26, false;
    RebalanceInProgress = 27, false;
    InvalidCommitOffsetSize = 28, false;
    TopicAuthorizationFailed = 29, false;
    GroupAuthorizationFailed = 30, false;
    ClusterAuthorizationFailed = 31, false;
    InvalidTimestamp = 32, false;
    UnsupportedSaslMechanism = 33, false;
    IllegalSaslState = 34, false;
    UnsupportedVersion = 35, false;
    TopicAlreadyExists = 36, false;
    InvalidPartitions = 37, false;
    InvalidReplicationFactor = 38, false;
    InvalidReplicaAssignment = 39, false;
    InvalidConfig = 40, false;
    NotController = 41, true;
    InvalidRequest = 42, false;
    UnsupportedForMessageFormat = 43, false;
    PolicyViolation = 44, false;
    OutOfOrderSequenceNumber = 45, false;
    DuplicateSequenceNumber = 46, false;
    InvalidProducerEpoch = 47, false;
    InvalidTxnState = 48, false;
    InvalidProducerIdMapping = 49, false;
    InvalidTransactionTimeout = 50, false;
    ConcurrentTransactions = 51, true;
    TransactionCoordinatorFenced = 52, false;
    TransactionalIdAuthorizationFailed = 53, false;
    SecurityDisabled = 54, false;
    OperationNotAttempted = 55, false;
    KafkaStorageError = 56, true;
    LogDirNotFound = 57, false;
    SaslAuthenticationFailed = 58, false;
    UnknownProducerId = 59, false;
    ReassignmentInProgress = 60, false;
    InvalidRecord = 87, false;
    NonEmptyGroup = 68, false;
    GroupIdNotFound = 69, false;
    FetchSessionIdNotFound = 70, true;
    InvalidFetchSessionEpoch = 71, true;
    ListenerNotFound = 72, true;
    TopicDeletionDisabled = 73, false;
    FencedLeaderEpoch = 74, true;
    UnknownLeaderEpoch = 75, true;
    UnsupportedCompressionType = 76, false;
    StaleBrokerEpoch = 77, false;
    OffsetNotAvailable = 78, true;
    MemberIdRequired = 79, false;
    PreferredLeaderNotAvailable = 80, true;
    GroupMaxSizeReached = 81, false;
    FencedInstanceId = 82, false;
    EligibleLeadersNotAvailable = 83, true;
    ElectionNotNeeded = 84, true;
    NoReassignmentInProgress = 85, false;
    GroupSubscribedToTopic = 86, false;
    UnstableOffsetCommit = 88, true;
    ThrottlingQuotaExceeded = 89, true;
    ProducerFenced = 90, false;
    ResourceNotFound = 91, false;
    DuplicateResource = 92, false;
    UnacceptableCredential = 93, false;
    InconsistentVoterSet = 94, false;
    InvalidUpdateVersion = 95, false;
    FeatureUpdateFailed = 96, false;
    PrincipalDeserializationFailure = 97, false;
    SnapshotNotFound = 98, false;
    PositionOutOfRange = 99, false;
    UnknownTopicId = 100, true;
    DuplicateBrokerRegistration = 101, false;
    BrokerIdNotRegistered = 102, false;
    InconsistentTopicId = 103, true;
    InconsistentClusterId = 104, false;
    TransactionalIdNotFound = 105, false;
    FetchSessionTopicIdError = 106, true;
    IneligibleReplica = 107, false;
    NewLeaderElected = 108, false;
    OffsetMovedToTieredStorage = 109, false;
    FencedMemberEpoch = 110, false;
    UnreleasedInstanceId = 111, false;
    UnsupportedAssignor = 112, false;
    StaleMemberEpoch = 113, false;
    MismatchedEndpointType = 114, false;
    UnsupportedEndpointType = 115, false;
    UnknownControllerId = 116, false;
    UnknownSubscriptionId = 117, false;
    TelemetryTooLarge = 118, false;
    InvalidRegistration = 119, false;
    TransactionAbortable = 120, false;
    InvalidRegularExpression = 128, false;
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_match_kafka() {
        let cases = [
            (ErrorCode::None, 0),
            (ErrorCode::OffsetOutOfRange, 1),
            (ErrorCode::CorruptMessage, 2),
            (ErrorCode::UnknownTopicOrPartition, 3),
            (ErrorCode::MessageTooLarge, 10),
            (ErrorCode::InvalidRequiredAcks, 21),
            (ErrorCode::UnsupportedVersion, 35),
            (ErrorCode::TopicAlreadyExists, 36),
            (ErrorCode::OutOfOrderSequenceNumber, 45),
            (ErrorCode::InvalidProducerEpoch, 47),
            (ErrorCode::KafkaStorageError, 56),
            (ErrorCode::MemberIdRequired, 79),
            (ErrorCode::InvalidRecord, 87),
            (ErrorCode::UnknownTopicId, 100),
            (ErrorCode::InvalidRegularExpression, 128),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code, "{e:?}");
            assert_eq!(ErrorCode::from_code(code), Some(e));
        }
        assert!(ErrorCode::UnknownTopicOrPartition.is_retriable());
        assert!(!ErrorCode::InvalidRecord.is_retriable());
        assert_eq!(ErrorCode::from_code(9999), None);
    }
}
