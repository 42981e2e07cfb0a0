"""The life of a paid fal job: its state machine, the job ledger, the result cache, collecting
its result. Nothing here knows which model was asked or how the request was built (that is
`kontext/`); everything here keeps the promise that a job is paid for once and never lost."""
