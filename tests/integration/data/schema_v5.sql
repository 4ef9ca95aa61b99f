-- The schema RoadLedger's apply_schema created at released schema version 5 (commit
-- f858541, roadledger/db/schema.py and roadledger/db/telemetry_schema.py), partitioned
-- telemetry mode, without day partitions (rows go to the DEFAULT partitions). Test data
-- for tests/integration/test_schema_migrations.py: do not edit to follow the current schema.

CREATE TABLE IF NOT EXISTS ledger_logs (
    log_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin      text NOT NULL UNIQUE,
    epoch       bigint NOT NULL CHECK (epoch >= 1),
    tree_size   bigint NOT NULL DEFAULT 0 CHECK (tree_size >= 0),
    root_hash   bytea,
    checkpoint  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ledger_entries (
    log_id      integer NOT NULL,
    leaf_index  bigint NOT NULL,
    leaf_hash   bytea NOT NULL CHECK (length(leaf_hash) = 32),
    entry       bytea NOT NULL,
    PRIMARY KEY (log_id, leaf_index)
);

CREATE INDEX IF NOT EXISTS ledger_entries_leaf_hash ON ledger_entries USING hash (leaf_hash);

CREATE TABLE IF NOT EXISTS ledger_nodes (
    log_id      integer NOT NULL,
    level       smallint NOT NULL CHECK (level >= 4),
    node_index  bigint NOT NULL,
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (log_id, level, node_index)
);

CREATE TABLE IF NOT EXISTS ledger_blocks (
    log_id            integer NOT NULL,
    height            bigint NOT NULL,
    block_hash        bytea NOT NULL UNIQUE,
    header            bytea NOT NULL,
    first_leaf_index  bigint NOT NULL,
    leaf_count        bigint NOT NULL,
    tree_size         bigint NOT NULL,
    created_at        timestamptz NOT NULL,
    PRIMARY KEY (log_id, height)
);

CREATE TABLE IF NOT EXISTS ledger_checkpoints (
    log_id      integer NOT NULL,
    tree_size   bigint NOT NULL,
    note        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (log_id, tree_size)
);

CREATE TABLE IF NOT EXISTS organisations (
    org_id      text PRIMARY KEY CHECK (org_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    name        text NOT NULL,
    kind        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS devices (
    device_id      text PRIMARY KEY,
    owner_org      text NOT NULL REFERENCES organisations (org_id),
    kind           text NOT NULL CHECK (kind IN ('vehicle', 'rsu')),
    vin            text,
    vehicle_class  text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS device_keys (
    device_id      text NOT NULL REFERENCES devices (device_id),
    key_id         text NOT NULL,
    public_key     bytea NOT NULL CHECK (length(public_key) = 32),
    valid_from_ms  bigint NOT NULL,
    revoked_at_ms  bigint,
    record         text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, key_id)
);

CREATE TABLE IF NOT EXISTS ledger_outbox (
    outbox_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id     text NOT NULL,
    entry         bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);

CREATE INDEX IF NOT EXISTS ledger_outbox_pending ON ledger_outbox (outbox_id) WHERE published_at IS NULL;

CREATE TABLE IF NOT EXISTS device_messages (
    device_id         text NOT NULL,
    seq               bigint NOT NULL,
    message_hash      bytea NOT NULL CHECK (length(message_hash) = 32),
    source_partition  integer NOT NULL,
    source_offset     bigint NOT NULL,
    seen_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, seq)
);

CREATE TABLE IF NOT EXISTS road_segments (
    segment_id       integer PRIMARY KEY,
    name             text NOT NULL,
    road_class       text NOT NULL,
    speed_limit_kmh  integer NOT NULL CHECK (speed_limit_kmh > 0),
    a_lat_e7         integer NOT NULL,
    a_lon_e7         integer NOT NULL,
    b_lat_e7         integer NOT NULL,
    b_lon_e7         integer NOT NULL
);

CREATE TABLE IF NOT EXISTS segment_forecasts (
    segment_id    integer NOT NULL,
    issued_at     timestamptz NOT NULL,
    horizon_min   integer NOT NULL CHECK (horizon_min > 0),
    target_at     timestamptz NOT NULL,
    speed_kmh     double precision CHECK (speed_kmh >= 0),
    flow_vehicles double precision CHECK (flow_vehicles >= 0),
    speed_method  text NOT NULL,
    flow_method   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, issued_at, horizon_min)
);

CREATE INDEX IF NOT EXISTS segment_forecasts_issued ON segment_forecasts (issued_at);

CREATE TABLE IF NOT EXISTS vehicle_mileage_forecasts (
    device_id       text NOT NULL,
    issued_on       date NOT NULL,
    first_day       date NOT NULL,
    last_day        date NOT NULL,
    days            integer NOT NULL CHECK (days > 0),
    mean_daily_km   double precision NOT NULL,
    annual_km       double precision NOT NULL,
    annual_low_km   double precision NOT NULL,
    annual_high_km  double precision NOT NULL,
    interval_level  double precision NOT NULL,
    method          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, issued_on)
);

CREATE TABLE IF NOT EXISTS warnings (
    warning_id    text PRIMARY KEY,
    type          text NOT NULL,
    severity      text NOT NULL,
    device_id     text,
    segment_id    integer,
    from_ts       timestamptz NOT NULL,
    to_ts         timestamptz NOT NULL,
    rule_version  text NOT NULL,
    evidence      jsonb NOT NULL,
    detail        jsonb NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (device_id IS NOT NULL OR segment_id IS NOT NULL),
    CHECK (to_ts >= from_ts)
);

CREATE INDEX IF NOT EXISTS warnings_device ON warnings (device_id, from_ts);

CREATE INDEX IF NOT EXISTS warnings_type_time ON warnings (type, from_ts);

CREATE TABLE IF NOT EXISTS analytics_progress (
    group_id    text PRIMARY KEY,
    recv_ms     bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS organisation_keys (
    org_id         text NOT NULL REFERENCES organisations (org_id),
    key_id         text NOT NULL CHECK (key_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    public_key     bytea NOT NULL CHECK (length(public_key) = 32),
    valid_from_ms  bigint NOT NULL,
    revoked_at_ms  bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key_id)
);

CREATE TABLE IF NOT EXISTS rule_versions (
    org_id             text NOT NULL,
    rule_set           text NOT NULL,
    version            integer NOT NULL CHECK (version > 0),
    effective_from_ms  bigint NOT NULL,
    key_id             text NOT NULL,
    signed             bytea NOT NULL,
    published_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, rule_set, version),
    FOREIGN KEY (org_id, key_id) REFERENCES organisation_keys (org_id, key_id)
);

CREATE TABLE IF NOT EXISTS telemetry (
    device_id   text        NOT NULL,
    seq         bigint      NOT NULL,
    ts          timestamptz NOT NULL,
    recv_ts     timestamptz NOT NULL,
    odo_m       bigint,
    lat_e7      integer     NOT NULL,
    lon_e7      integer     NOT NULL,
    spd_cms     integer,
    hdg_cdeg    integer,
    segment_id  integer,
    leaf_hash   bytea       NOT NULL CHECK (length(leaf_hash) = 32),
    PRIMARY KEY (device_id, seq, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE IF NOT EXISTS rsu_observations (
    rsu_id      text        NOT NULL,
    seq         bigint      NOT NULL,
    obs_index   smallint    NOT NULL,
    ts          timestamptz NOT NULL,
    vehicle_id  text        NOT NULL,
    obs_ts      timestamptz NOT NULL,
    lat_e7      integer     NOT NULL,
    lon_e7      integer     NOT NULL,
    segment_id  integer,
    leaf_hash   bytea       NOT NULL CHECK (length(leaf_hash) = 32),
    PRIMARY KEY (rsu_id, seq, obs_index, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE IF NOT EXISTS telemetry_default PARTITION OF telemetry DEFAULT;

CREATE TABLE IF NOT EXISTS rsu_observations_default PARTITION OF rsu_observations DEFAULT;

CREATE TABLE IF NOT EXISTS segment_vehicles_5m (
    bucket      timestamptz NOT NULL,
    segment_id  integer     NOT NULL,
    device_id   text        NOT NULL,
    PRIMARY KEY (bucket, segment_id, device_id)
) PARTITION BY RANGE (bucket);

CREATE TABLE IF NOT EXISTS segment_vehicles_5m_default PARTITION OF segment_vehicles_5m DEFAULT;

CREATE TABLE IF NOT EXISTS segment_speed_5m (
    bucket       timestamptz NOT NULL,
    segment_id   integer     NOT NULL,
    speed_sum    bigint      NOT NULL,
    samples      bigint      NOT NULL,
    vehicles     bigint      NOT NULL,
    avg_spd_cms  double precision
                 GENERATED ALWAYS AS (speed_sum::double precision / nullif(samples, 0)) STORED,
    PRIMARY KEY (bucket, segment_id)
);

CREATE OR REPLACE FUNCTION roadledger_attach_day_partition(parent text, day date)
RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
    sch   text := current_schema();
    col   text;
    part  text := parent || '_p' || to_char(day, 'YYYYMMDD');
    lo    timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi    timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    col := CASE parent WHEN 'telemetry' THEN 'ts' WHEN 'rsu_observations' THEN 'ts'
                       WHEN 'segment_vehicles_5m' THEN 'bucket' END;
    IF col IS NULL THEN
        RAISE EXCEPTION 'not a day-partitioned telemetry table: %', parent;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(sch || '.' || part));
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = sch AND c.relname = part) THEN
        RETURN false;
    END IF;
    EXECUTE format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', sch, parent || '_default');
    EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   sch, part, sch, parent);
    EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                   'INSERT INTO %I.%I SELECT * FROM moved',
                   sch, parent || '_default', col, col, sch, part) USING lo, hi;
    EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                   sch, parent, sch, part, lo, hi);
    RETURN true;
END
$fn$;

CREATE INDEX IF NOT EXISTS telemetry_leaf_hash ON telemetry USING hash (leaf_hash);

CREATE INDEX IF NOT EXISTS telemetry_ts_brin ON telemetry USING brin (ts);

CREATE INDEX IF NOT EXISTS rsu_observations_vehicle ON rsu_observations (vehicle_id, obs_ts);

CREATE TABLE IF NOT EXISTS roadledger_schema (version integer NOT NULL);

INSERT INTO roadledger_schema (version) VALUES (5);
