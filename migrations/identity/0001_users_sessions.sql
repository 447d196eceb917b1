-- Identity's own tables. Applied by services.platform.migrate with
-- search_path set to the identity schema.
--
-- PII (CPF, address, TOTP secret) is stored only as AES-GCM ciphertext whose
-- header carries the id of the key that sealed it (services.platform.crypto);
-- the CPF's keyed HMAC gives uniqueness and look-ups without decrypting.

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    email            text NOT NULL,
    phone_number     text NOT NULL,
    full_name        text NOT NULL,
    birth_date       date NOT NULL,
    cpf_ciphertext   bytea NOT NULL,
    cpf_hash         bytea NOT NULL,
    address_ciphertext bytea,
    password_hash    text NOT NULL,
    roles            text[] NOT NULL DEFAULT ARRAY['user'],
    kyc_status       text NOT NULL DEFAULT 'NOT_STARTED',
    mfa_secret_ciphertext bytea,
    mfa_enabled      boolean NOT NULL DEFAULT false,
    mfa_pending_ciphertext bytea,
    mfa_last_step    bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    version          integer NOT NULL DEFAULT 1,
    CONSTRAINT users_email_lower CHECK (email = lower(email)),
    CONSTRAINT users_kyc_status CHECK (kyc_status IN
        ('NOT_STARTED','PENDING','WAITING_PROVIDER','IN_REVIEW','APPROVED','DECLINED'))
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_cpf_hash_key ON users (cpf_hash);

CREATE TABLE devices (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id),
    client_device_id text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    UNIQUE (user_id, client_device_id)
);

-- A session is one refresh-token family bound to one device.
CREATE TABLE sessions (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id),
    device_id          uuid NOT NULL REFERENCES devices (id),
    current_token_hash text NOT NULL,
    generation         integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    revoke_reason      text
);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_device_idx ON sessions (device_id) WHERE revoked_at IS NULL;

-- Every refresh token a session has retired: presenting one again is reuse.
CREATE TABLE retired_refresh_tokens (
    token_hash  text PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions (id),
    retired_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retired_refresh_tokens_session_idx ON retired_refresh_tokens (session_id);
