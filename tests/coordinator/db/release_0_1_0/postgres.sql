--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: accounts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.accounts (
    subject character varying(128) NOT NULL,
    balance bigint NOT NULL,
    escrowed bigint NOT NULL,
    staked bigint NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: api_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_keys (
    key_hash character varying(64) NOT NULL,
    role character varying(16) NOT NULL,
    subject character varying(128) NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: bids; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.bids (
    id character varying(32) NOT NULL,
    client_id character varying(128) NOT NULL,
    provider character varying(128) NOT NULL,
    capacity integer NOT NULL,
    price bigint NOT NULL,
    notes text,
    status character varying(16) NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: bookings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.bookings (
    id character varying(32) NOT NULL,
    gpu_id character varying(32) NOT NULL,
    miner_id character varying(128) NOT NULL,
    client_id character varying(128) NOT NULL,
    job_id character varying(128),
    duration_hours double precision NOT NULL,
    price_per_hour bigint NOT NULL,
    base_price bigint NOT NULL,
    total_cost bigint NOT NULL,
    refund bigint,
    miner_revenue bigint,
    stakers_reward bigint,
    pricing json NOT NULL,
    status character varying(32) NOT NULL,
    lease_state character varying(16) NOT NULL,
    lease_detail character varying(512),
    lease_generation integer NOT NULL,
    start_time timestamp without time zone NOT NULL,
    end_time timestamp without time zone NOT NULL,
    ended_at timestamp without time zone,
    confirmed_at timestamp without time zone,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: gpus; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.gpus (
    id character varying(32) NOT NULL,
    miner_id character varying(128) NOT NULL,
    uuid character varying(128),
    model character varying(128) NOT NULL,
    memory_gb integer NOT NULL,
    memory_mib bigint,
    compute_capability character varying(16),
    cuda_version character varying(32),
    driver_version character varying(64),
    cuda_cores integer,
    region character varying(64),
    description text,
    capabilities json NOT NULL,
    price_per_hour bigint NOT NULL,
    health character varying(16) NOT NULL,
    health_reason character varying(256),
    unhealthy_since timestamp without time zone,
    utilization_pct double precision,
    memory_used_mib double precision,
    temperature_c double precision,
    power_draw_w double precision,
    metrics_at timestamp without time zone,
    rating_sum integer NOT NULL,
    total_reviews integer NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    deleted_at timestamp without time zone
);


--
-- Name: ledger_entries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ledger_entries (
    id integer NOT NULL,
    tx_id character varying(32) NOT NULL,
    subject character varying(128) NOT NULL,
    bucket character varying(16) NOT NULL,
    amount bigint NOT NULL,
    kind character varying(32) NOT NULL,
    ref character varying(64),
    created_at timestamp without time zone NOT NULL
);


--
-- Name: ledger_entries_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ledger_entries_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ledger_entries_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ledger_entries_id_seq OWNED BY public.ledger_entries.id;


--
-- Name: miners; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.miners (
    id character varying(128) NOT NULL,
    region character varying(64),
    concurrency integer NOT NULL,
    capabilities json NOT NULL,
    agent json NOT NULL,
    session_token character varying(64),
    status_text character varying(32),
    inflight integer NOT NULL,
    registered_at timestamp without time zone NOT NULL,
    last_heartbeat_at timestamp without time zone,
    deregistered_at timestamp without time zone,
    lease_version bigint NOT NULL
);


--
-- Name: offers; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.offers (
    id character varying(32) NOT NULL,
    provider character varying(128) NOT NULL,
    gpu_model character varying(128) NOT NULL,
    gpu_memory_gb integer NOT NULL,
    gpu_count integer NOT NULL,
    capacity integer NOT NULL,
    price_per_hour bigint NOT NULL,
    cuda_version character varying(32),
    region character varying(64),
    status character varying(16) NOT NULL,
    attributes json NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);


--
-- Name: reviews; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.reviews (
    id character varying(32) NOT NULL,
    gpu_id character varying(32) NOT NULL,
    booking_id character varying(32) NOT NULL,
    client_id character varying(128) NOT NULL,
    rating integer NOT NULL,
    comment text,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: stake_rewards; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.stake_rewards (
    id integer NOT NULL,
    stake_id character varying(32) NOT NULL,
    miner_id character varying(128) NOT NULL,
    amount bigint NOT NULL,
    ref character varying(64),
    tx_id character varying(32) NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: stake_rewards_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.stake_rewards_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: stake_rewards_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.stake_rewards_id_seq OWNED BY public.stake_rewards.id;


--
-- Name: stakes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.stakes (
    id character varying(32) NOT NULL,
    staker character varying(128) NOT NULL,
    miner_id character varying(128) NOT NULL,
    amount bigint NOT NULL,
    rewards bigint NOT NULL,
    lock_period_days integer NOT NULL,
    status character varying(16) NOT NULL,
    created_at timestamp without time zone NOT NULL,
    lock_ends_at timestamp without time zone NOT NULL,
    unbonding_at timestamp without time zone,
    completed_at timestamp without time zone
);


--
-- Name: ledger_entries id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ledger_entries ALTER COLUMN id SET DEFAULT nextval('public.ledger_entries_id_seq'::regclass);


--
-- Name: stake_rewards id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.stake_rewards ALTER COLUMN id SET DEFAULT nextval('public.stake_rewards_id_seq'::regclass);


--
-- Data for Name: accounts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.accounts VALUES ('ops', 0, 0, 0, '2026-12-04 01:36:34.997459');
INSERT INTO public.accounts VALUES ('host-01', 200000520, 0, 0, '2026-12-04 01:36:34.997459');
INSERT INTO public.accounts VALUES ('alice', 4999999480, 4800000000, 0, '2026-12-04 01:36:34.997459');
INSERT INTO public.accounts VALUES ('bob', 35000000000, 0, 15000000000, '2026-12-04 01:36:34.997459');


--
-- Data for Name: api_keys; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.api_keys VALUES ('835d6dc88b708bc646d6db82c853ef4182fabbd4a8de59c213f2b5ab3ae7d9be', 'admin', 'ops', '2026-12-04 01:36:34.997459');
INSERT INTO public.api_keys VALUES ('e579fe016ff98798c51fe19237f980de0241e790b9394e1f3c02cf0a80ce4387', 'miner', 'host-01', '2026-12-04 01:36:34.997459');
INSERT INTO public.api_keys VALUES ('e7dcee3cc63d170ba049da2c754a63ea55dcdd8d36f19c552cb59e0d4063b660', 'client', 'alice', '2026-12-04 01:36:34.997459');
INSERT INTO public.api_keys VALUES ('52579f5dd420f7ab7590d737a27881b48f7853f8444dd3f5a5af9825b0ce7fc3', 'client', 'bob', '2026-12-04 01:36:34.997459');


--
-- Data for Name: bids; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.bids VALUES ('bid_c030fc184317d893', 'alice', 'host-01', 1, 200000000, NULL, 'pending', '2026-12-04 01:36:35.152728');


--
-- Data for Name: bookings; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.bookings VALUES ('bk_64505fd21b81ff22', 'gpu_eba5be5fb6d0521d', 'host-01', 'alice', NULL, 2, 200000000, 250000000, 400000000, 199999480, 200000520, 0, '{"multiplier": "0.80000000", "confidence_score": 0.4083, "factors": {"engine": "market_balance", "model": "NVIDIA H100 80GB HBM3", "online_gpus": 2, "booked_gpus": 0, "total_gpus": 2, "bookings_24h": 0, "utilization": "0E-8", "demand": "0E-8", "multiplier": "0.80000000", "confidence": 0.4083, "trend": "stable"}}', 'released', 'pending', NULL, 2, '2026-12-04 01:36:35.069908', '2026-12-04 03:36:35.069908', '2026-12-04 01:36:35.088631', NULL, '2026-12-04 01:36:35.069908');
INSERT INTO public.bookings VALUES ('bk_2033f422b45d6948', 'gpu_5199de5065d6c867', 'host-01', 'alice', NULL, 24, 200000000, 250000000, 4800000000, NULL, NULL, NULL, '{"multiplier": "0.80000000", "confidence_score": 0.45, "factors": {"engine": "market_balance", "model": "NVIDIA H100 80GB HBM3", "online_gpus": 2, "booked_gpus": 0, "total_gpus": 2, "bookings_24h": 1, "utilization": "0E-8", "demand": "0.50000000", "multiplier": "0.80000000", "confidence": 0.45, "trend": "increasing"}}', 'active', 'pending', NULL, 1, '2026-12-04 01:36:35.115713', '2026-12-05 01:36:35.115713', NULL, NULL, '2026-12-04 01:36:35.115713');


--
-- Data for Name: gpus; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.gpus VALUES ('gpu_5199de5065d6c867', 'host-01', 'GPU-fixture-1', 'NVIDIA H100 80GB HBM3', 80, 81559, NULL, NULL, NULL, NULL, 'eu-west', NULL, '["cuda12"]', 250000000, 'ok', NULL, NULL, NULL, NULL, NULL, NULL, '2026-12-04 01:36:35.047434', 0, 0, '2026-12-04 01:36:35.04153', '2026-12-04 01:36:35.04153', NULL);
INSERT INTO public.gpus VALUES ('gpu_eba5be5fb6d0521d', 'host-01', 'GPU-fixture-0', 'NVIDIA H100 80GB HBM3', 80, 81559, NULL, NULL, NULL, NULL, 'eu-west', NULL, '["cuda12"]', 250000000, 'ok', NULL, NULL, NULL, NULL, NULL, NULL, '2026-12-04 01:36:35.047434', 5, 1, '2026-12-04 01:36:35.033407', '2026-12-04 01:36:35.033407', NULL);


--
-- Data for Name: ledger_entries; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ledger_entries VALUES (1, 'tx_f2689047796651d6', 'alice', 'balance', 10000000000, 'credit', NULL, '2026-12-04 01:36:35.055902');
INSERT INTO public.ledger_entries VALUES (2, 'tx_1fa5b93fd44c5816', 'bob', 'balance', 50000000000, 'credit', NULL, '2026-12-04 01:36:35.063766');
INSERT INTO public.ledger_entries VALUES (3, 'tx_576ac7461f1d5470', 'alice', 'balance', -400000000, 'booking_escrow', 'bk_64505fd21b81ff22', '2026-12-04 01:36:35.069908');
INSERT INTO public.ledger_entries VALUES (4, 'tx_576ac7461f1d5470', 'alice', 'escrowed', 400000000, 'booking_escrow', 'bk_64505fd21b81ff22', '2026-12-04 01:36:35.069908');
INSERT INTO public.ledger_entries VALUES (5, 'tx_2d173b076eda86c6', 'alice', 'escrowed', -400000000, 'booking_released', 'bk_64505fd21b81ff22', '2026-12-04 01:36:35.088631');
INSERT INTO public.ledger_entries VALUES (6, 'tx_2d173b076eda86c6', 'alice', 'balance', 199999480, 'booking_released', 'bk_64505fd21b81ff22', '2026-12-04 01:36:35.088631');
INSERT INTO public.ledger_entries VALUES (7, 'tx_2d173b076eda86c6', 'host-01', 'balance', 200000520, 'booking_released', 'bk_64505fd21b81ff22', '2026-12-04 01:36:35.088631');
INSERT INTO public.ledger_entries VALUES (8, 'tx_b88733df74da5864', 'alice', 'balance', -4800000000, 'booking_escrow', 'bk_2033f422b45d6948', '2026-12-04 01:36:35.115713');
INSERT INTO public.ledger_entries VALUES (9, 'tx_b88733df74da5864', 'alice', 'escrowed', 4800000000, 'booking_escrow', 'bk_2033f422b45d6948', '2026-12-04 01:36:35.115713');
INSERT INTO public.ledger_entries VALUES (10, 'tx_613213cbea71ce88', 'bob', 'balance', -15000000000, 'stake', 'st_6173b387ce0fbbdb', '2026-12-04 01:36:35.144518');
INSERT INTO public.ledger_entries VALUES (11, 'tx_613213cbea71ce88', 'bob', 'staked', 15000000000, 'stake', 'st_6173b387ce0fbbdb', '2026-12-04 01:36:35.144518');


--
-- Data for Name: miners; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.miners VALUES ('host-01', 'eu-west', 1, '{}', '{}', '43f282c8d515d3091f776585bfd9e246', 'ONLINE', 0, '2026-12-04 01:36:35.018636', '2026-12-04 01:36:35.047434', NULL, 3);


--
-- Data for Name: offers; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.offers VALUES ('off_dd3b29007da4fd08', 'host-01', 'NVIDIA H100 80GB HBM3', 80, 2, 1, 250000000, NULL, 'eu-west', 'open', '{"gpu_ids": ["gpu_5199de5065d6c867", "gpu_eba5be5fb6d0521d"], "capabilities": ["cuda12"]}', '2026-12-04 01:36:35.156437', '2026-12-04 01:36:35.156437');


--
-- Data for Name: reviews; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.reviews VALUES ('rv_eb50592a72b37690', 'gpu_eba5be5fb6d0521d', 'bk_64505fd21b81ff22', 'alice', 5, 'fast and honest', '2026-12-04 01:36:35.10556');


--
-- Data for Name: stake_rewards; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: stakes; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.stakes VALUES ('st_6173b387ce0fbbdb', 'bob', 'host-01', 15000000000, 0, 0, 'active', '2026-12-04 01:36:35.144518', '2026-12-04 01:36:35.144518', NULL, NULL);


--
-- Name: ledger_entries_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ledger_entries_id_seq', 11, true);


--
-- Name: stake_rewards_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.stake_rewards_id_seq', 1, false);


--
-- Name: accounts accounts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_pkey PRIMARY KEY (subject);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (key_hash);


--
-- Name: bids bids_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.bids
    ADD CONSTRAINT bids_pkey PRIMARY KEY (id);


--
-- Name: bookings bookings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.bookings
    ADD CONSTRAINT bookings_pkey PRIMARY KEY (id);


--
-- Name: gpus gpus_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.gpus
    ADD CONSTRAINT gpus_pkey PRIMARY KEY (id);


--
-- Name: ledger_entries ledger_entries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ledger_entries
    ADD CONSTRAINT ledger_entries_pkey PRIMARY KEY (id);


--
-- Name: miners miners_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.miners
    ADD CONSTRAINT miners_pkey PRIMARY KEY (id);


--
-- Name: offers offers_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.offers
    ADD CONSTRAINT offers_pkey PRIMARY KEY (id);


--
-- Name: reviews reviews_booking_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.reviews
    ADD CONSTRAINT reviews_booking_id_key UNIQUE (booking_id);


--
-- Name: reviews reviews_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.reviews
    ADD CONSTRAINT reviews_pkey PRIMARY KEY (id);


--
-- Name: stake_rewards stake_rewards_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.stake_rewards
    ADD CONSTRAINT stake_rewards_pkey PRIMARY KEY (id);


--
-- Name: stakes stakes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.stakes
    ADD CONSTRAINT stakes_pkey PRIMARY KEY (id);


--
-- Name: offers uq_offer_provider_model; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.offers
    ADD CONSTRAINT uq_offer_provider_model UNIQUE (provider, gpu_model);


--
-- Name: ix_bids_client; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_bids_client ON public.bids USING btree (client_id);


--
-- Name: ix_bookings_client_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_bookings_client_created ON public.bookings USING btree (client_id, created_at);


--
-- Name: ix_bookings_gpu_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_bookings_gpu_created ON public.bookings USING btree (gpu_id, created_at);


--
-- Name: ix_bookings_miner_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_bookings_miner_created ON public.bookings USING btree (miner_id, created_at);


--
-- Name: ix_bookings_miner_ended; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_bookings_miner_ended ON public.bookings USING btree (miner_id, ended_at);


--
-- Name: ix_bookings_status_end; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_bookings_status_end ON public.bookings USING btree (status, end_time);


--
-- Name: ix_gpus_memory_price_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_gpus_memory_price_id ON public.gpus USING btree (memory_gb, price_per_hour, id);


--
-- Name: ix_gpus_miner_price_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_gpus_miner_price_id ON public.gpus USING btree (miner_id, price_per_hour, id);


--
-- Name: ix_gpus_model_price_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_gpus_model_price_id ON public.gpus USING btree (model, price_per_hour, id);


--
-- Name: ix_gpus_price_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_gpus_price_id ON public.gpus USING btree (price_per_hour, id);


--
-- Name: ix_gpus_region_price_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_gpus_region_price_id ON public.gpus USING btree (lower((region)::text), price_per_hour, id);


--
-- Name: ix_ledger_entries_tx_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_ledger_entries_tx_id ON public.ledger_entries USING btree (tx_id);


--
-- Name: ix_ledger_kind; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_ledger_kind ON public.ledger_entries USING btree (kind);


--
-- Name: ix_ledger_subject_time; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_ledger_subject_time ON public.ledger_entries USING btree (subject, created_at);


--
-- Name: ix_reviews_gpu_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_reviews_gpu_created ON public.reviews USING btree (gpu_id, created_at);


--
-- Name: ix_stake_rewards_stake; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_stake_rewards_stake ON public.stake_rewards USING btree (stake_id, created_at);


--
-- Name: ix_stakes_miner_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_stakes_miner_status ON public.stakes USING btree (miner_id, status);


--
-- Name: ix_stakes_staker; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_stakes_staker ON public.stakes USING btree (staker);


--
-- Name: uq_booking_active_gpu; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX uq_booking_active_gpu ON public.bookings USING btree (gpu_id) WHERE ((status)::text = 'active'::text);


--
-- Name: uq_gpu_miner_uuid; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX uq_gpu_miner_uuid ON public.gpus USING btree (miner_id, uuid) WHERE ((deleted_at IS NULL) AND (uuid IS NOT NULL));


--
-- Name: bookings bookings_gpu_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.bookings
    ADD CONSTRAINT bookings_gpu_id_fkey FOREIGN KEY (gpu_id) REFERENCES public.gpus(id);


--
-- Name: gpus gpus_miner_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.gpus
    ADD CONSTRAINT gpus_miner_id_fkey FOREIGN KEY (miner_id) REFERENCES public.miners(id);


--
-- Name: reviews reviews_booking_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.reviews
    ADD CONSTRAINT reviews_booking_id_fkey FOREIGN KEY (booking_id) REFERENCES public.bookings(id);


--
-- Name: reviews reviews_gpu_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.reviews
    ADD CONSTRAINT reviews_gpu_id_fkey FOREIGN KEY (gpu_id) REFERENCES public.gpus(id);


--
-- Name: stake_rewards stake_rewards_stake_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.stake_rewards
    ADD CONSTRAINT stake_rewards_stake_id_fkey FOREIGN KEY (stake_id) REFERENCES public.stakes(id);


--
-- Name: stakes stakes_miner_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.stakes
    ADD CONSTRAINT stakes_miner_id_fkey FOREIGN KEY (miner_id) REFERENCES public.miners(id);


--
-- PostgreSQL database dump complete
--


