-- KYC tables (issue 5). Schema `kyc`; the platform template already gives it
-- idempotency_keys, outbox_events, processed_events, audit_logs and
-- third_party_calls (every provider attempt, redacted).

-- Uploaded documents: metadata only. The bytes live in the S3 store under a
-- random object key, encrypted by the service before upload (FieldCipher,
-- AES-256-GCM bound to the object key); the document number is PII and is
-- stored encrypted too. Same bytes for the same user = the same document.
CREATE TABLE documents (
    id                uuid        PRIMARY KEY,
    user_id           uuid        NOT NULL,
    doc_type          text        NOT NULL CHECK (doc_type IN ('CNH', 'RG', 'PROOF_OF_ADDRESS')),
    content_type      text        NOT NULL
        CHECK (content_type IN ('image/jpeg', 'image/png', 'application/pdf')),
    size_bytes        bigint      NOT NULL CHECK (size_bytes BETWEEN 1 AND 10485760),
    sha256            text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    version           integer     NOT NULL CHECK (version >= 1),
    object_key        text        NOT NULL UNIQUE,
    number_ciphertext bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, sha256),
    UNIQUE (user_id, doc_type, version)
);
CREATE INDEX documents_user ON documents (user_id, created_at DESC, id DESC);

-- One run of the process. At most one open run per user (the partial index is
-- the rule's last line of defence; the RPC checks first to answer clearly).
CREATE TABLE submissions (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL,
    state           text        NOT NULL CHECK (state IN
        ('PENDING', 'WAITING_PROVIDER', 'IN_REVIEW', 'APPROVED', 'DECLINED')),
    document_ids    uuid[]      NOT NULL CHECK (cardinality(document_ids) BETWEEN 1 AND 10),
    workflow_id     text        NOT NULL UNIQUE,
    decline_reasons text[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
CREATE UNIQUE INDEX submissions_one_open_per_user ON submissions (user_id)
    WHERE state IN ('PENDING', 'WAITING_PROVIDER', 'IN_REVIEW');
CREATE INDEX submissions_user ON submissions (user_id, created_at DESC, id DESC);

-- Each automated check of a submission; rewritten by its activity (idempotent).
CREATE TABLE submission_checks (
    submission_id uuid        NOT NULL REFERENCES submissions (id),
    check_type    text        NOT NULL CHECK (check_type IN
        ('CPF_SITUATION', 'DOCUMENT', 'BUREAU', 'SCREENING')),
    state         text        NOT NULL CHECK (state IN
        ('PENDING', 'WAITING_PROVIDER', 'PASSED', 'FAILED', 'NEEDS_REVIEW')),
    reason        text        NOT NULL DEFAULT '',
    from_cache    boolean     NOT NULL DEFAULT false,
    -- Provider evidence without PII (scores, flags, hits).
    evidence      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    PRIMARY KEY (submission_id, check_type)
);

-- The outcome of a submission: the automatic decision, then a reviewer's.
CREATE TABLE kyc_results (
    submission_id uuid        PRIMARY KEY REFERENCES submissions (id),
    user_id       uuid        NOT NULL,
    outcome       text        NOT NULL CHECK (outcome IN ('APPROVED', 'DECLINED', 'IN_REVIEW')),
    reasons       text[]      NOT NULL DEFAULT '{}',
    decided_by    text        NOT NULL,
    checks        jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kyc_results_user ON kyc_results (user_id, created_at DESC);

-- Cases a back-office analyst must decide, oldest first.
CREATE TABLE review_queue (
    id              uuid        PRIMARY KEY,
    submission_id   uuid        NOT NULL UNIQUE REFERENCES submissions (id),
    user_id         uuid        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('OPEN', 'APPROVED', 'DECLINED')),
    reasons         text[]      NOT NULL,
    screening_hits  jsonb       NOT NULL DEFAULT '[]'::jsonb,
    decided_by      text,
    decision_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    CHECK ((state = 'OPEN') = (decided_at IS NULL))
);
CREATE INDEX review_queue_state ON review_queue (state, created_at, id);

-- Decrypted copies made for a reviewer's signed URL; swept once expired.
CREATE TABLE document_views (
    object_key text        PRIMARY KEY,
    expire_at  timestamptz NOT NULL
);
CREATE INDEX document_views_expire ON document_views (expire_at);
