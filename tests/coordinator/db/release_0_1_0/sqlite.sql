BEGIN TRANSACTION;
CREATE TABLE accounts (
	subject VARCHAR(128) NOT NULL, 
	balance BIGINT NOT NULL, 
	escrowed BIGINT NOT NULL, 
	staked BIGINT NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (subject)
);
INSERT INTO "accounts" VALUES('ops',0,0,0,'2026-12-04 01:36:34.735431');
INSERT INTO "accounts" VALUES('host-01',200000496,0,0,'2026-12-04 01:36:34.735431');
INSERT INTO "accounts" VALUES('alice',4999999504,4800000000,0,'2026-12-04 01:36:34.735431');
INSERT INTO "accounts" VALUES('bob',35000000000,0,15000000000,'2026-12-04 01:36:34.735431');
CREATE TABLE api_keys (
	key_hash VARCHAR(64) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	subject VARCHAR(128) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (key_hash)
);
INSERT INTO "api_keys" VALUES('835d6dc88b708bc646d6db82c853ef4182fabbd4a8de59c213f2b5ab3ae7d9be','admin','ops','2026-12-04 01:36:34.735431');
INSERT INTO "api_keys" VALUES('e579fe016ff98798c51fe19237f980de0241e790b9394e1f3c02cf0a80ce4387','miner','host-01','2026-12-04 01:36:34.735431');
INSERT INTO "api_keys" VALUES('e7dcee3cc63d170ba049da2c754a63ea55dcdd8d36f19c552cb59e0d4063b660','client','alice','2026-12-04 01:36:34.735431');
INSERT INTO "api_keys" VALUES('52579f5dd420f7ab7590d737a27881b48f7853f8444dd3f5a5af9825b0ce7fc3','client','bob','2026-12-04 01:36:34.735431');
CREATE TABLE bids (
	id VARCHAR(32) NOT NULL, 
	client_id VARCHAR(128) NOT NULL, 
	provider VARCHAR(128) NOT NULL, 
	capacity INTEGER NOT NULL, 
	price BIGINT NOT NULL, 
	notes TEXT, 
	status VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "bids" VALUES('bid_27dfc5adbc8ada6a','alice','host-01',1,200000000,NULL,'pending','2026-12-04 01:36:34.867847');
CREATE TABLE bookings (
	id VARCHAR(32) NOT NULL, 
	gpu_id VARCHAR(32) NOT NULL, 
	miner_id VARCHAR(128) NOT NULL, 
	client_id VARCHAR(128) NOT NULL, 
	job_id VARCHAR(128), 
	duration_hours FLOAT NOT NULL, 
	price_per_hour BIGINT NOT NULL, 
	base_price BIGINT NOT NULL, 
	total_cost BIGINT NOT NULL, 
	refund BIGINT, 
	miner_revenue BIGINT, 
	stakers_reward BIGINT, 
	pricing JSON NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	lease_state VARCHAR(16) NOT NULL, 
	lease_detail VARCHAR(512), 
	lease_generation INTEGER NOT NULL, 
	start_time DATETIME NOT NULL, 
	end_time DATETIME NOT NULL, 
	ended_at DATETIME, 
	confirmed_at DATETIME, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(gpu_id) REFERENCES gpus (id)
);
INSERT INTO "bookings" VALUES('bk_d3d81d743bc44326','gpu_58244df82cc90ec1','host-01','alice',NULL,2.0,200000000,250000000,400000000,199999504,200000496,0,'{"multiplier": "0.80000000", "confidence_score": 0.4083, "factors": {"engine": "market_balance", "model": "NVIDIA H100 80GB HBM3", "online_gpus": 2, "booked_gpus": 0, "total_gpus": 2, "bookings_24h": 0, "utilization": "0E-8", "demand": "0E-8", "multiplier": "0.80000000", "confidence": 0.4083, "trend": "stable"}}','released','pending',NULL,2,'2026-12-04 01:36:34.801409','2026-12-04 03:36:34.801409','2026-12-04 01:36:34.819275',NULL,'2026-12-04 01:36:34.801409');
INSERT INTO "bookings" VALUES('bk_539a65decb567f45','gpu_2e8832de72fd605b','host-01','alice',NULL,24.0,200000000,250000000,4800000000,NULL,NULL,NULL,'{"multiplier": "0.80000000", "confidence_score": 0.45, "factors": {"engine": "market_balance", "model": "NVIDIA H100 80GB HBM3", "online_gpus": 2, "booked_gpus": 0, "total_gpus": 2, "bookings_24h": 1, "utilization": "0E-8", "demand": "0.50000000", "multiplier": "0.80000000", "confidence": 0.45, "trend": "increasing"}}','active','pending',NULL,1,'2026-12-04 01:36:34.839929','2026-12-05 01:36:34.839929',NULL,NULL,'2026-12-04 01:36:34.839929');
CREATE TABLE gpus (
	id VARCHAR(32) NOT NULL, 
	miner_id VARCHAR(128) NOT NULL, 
	uuid VARCHAR(128), 
	model VARCHAR(128) NOT NULL, 
	memory_gb INTEGER NOT NULL, 
	memory_mib BIGINT, 
	compute_capability VARCHAR(16), 
	cuda_version VARCHAR(32), 
	driver_version VARCHAR(64), 
	cuda_cores INTEGER, 
	region VARCHAR(64), 
	description TEXT, 
	capabilities JSON NOT NULL, 
	price_per_hour BIGINT NOT NULL, 
	health VARCHAR(16) NOT NULL, 
	health_reason VARCHAR(256), 
	unhealthy_since DATETIME, 
	utilization_pct FLOAT, 
	memory_used_mib FLOAT, 
	temperature_c FLOAT, 
	power_draw_w FLOAT, 
	metrics_at DATETIME, 
	rating_sum INTEGER NOT NULL, 
	total_reviews INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	deleted_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(miner_id) REFERENCES miners (id)
);
INSERT INTO "gpus" VALUES('gpu_58244df82cc90ec1','host-01','GPU-fixture-0','NVIDIA H100 80GB HBM3',80,81559,NULL,NULL,NULL,NULL,'eu-west',NULL,'["cuda12"]',250000000,'ok',NULL,NULL,NULL,NULL,NULL,NULL,'2026-12-04 01:36:34.780633',5,1,'2026-12-04 01:36:34.767650','2026-12-04 01:36:34.767650',NULL);
INSERT INTO "gpus" VALUES('gpu_2e8832de72fd605b','host-01','GPU-fixture-1','NVIDIA H100 80GB HBM3',80,81559,NULL,NULL,NULL,NULL,'eu-west',NULL,'["cuda12"]',250000000,'ok',NULL,NULL,NULL,NULL,NULL,NULL,'2026-12-04 01:36:34.780633',0,0,'2026-12-04 01:36:34.775628','2026-12-04 01:36:34.775628',NULL);
CREATE TABLE ledger_entries (
	id INTEGER NOT NULL, 
	tx_id VARCHAR(32) NOT NULL, 
	subject VARCHAR(128) NOT NULL, 
	bucket VARCHAR(16) NOT NULL, 
	amount BIGINT NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	ref VARCHAR(64), 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "ledger_entries" VALUES(1,'tx_a49d57ed5e49f686','alice','balance',10000000000,'credit',NULL,'2026-12-04 01:36:34.788252');
INSERT INTO "ledger_entries" VALUES(2,'tx_0505aabb43569fb1','bob','balance',50000000000,'credit',NULL,'2026-12-04 01:36:34.795457');
INSERT INTO "ledger_entries" VALUES(3,'tx_a7643e4db74d4400','alice','balance',-400000000,'booking_escrow','bk_d3d81d743bc44326','2026-12-04 01:36:34.801409');
INSERT INTO "ledger_entries" VALUES(4,'tx_a7643e4db74d4400','alice','escrowed',400000000,'booking_escrow','bk_d3d81d743bc44326','2026-12-04 01:36:34.801409');
INSERT INTO "ledger_entries" VALUES(5,'tx_0b8a4f5de2eceb60','alice','escrowed',-400000000,'booking_released','bk_d3d81d743bc44326','2026-12-04 01:36:34.819275');
INSERT INTO "ledger_entries" VALUES(6,'tx_0b8a4f5de2eceb60','alice','balance',199999504,'booking_released','bk_d3d81d743bc44326','2026-12-04 01:36:34.819275');
INSERT INTO "ledger_entries" VALUES(7,'tx_0b8a4f5de2eceb60','host-01','balance',200000496,'booking_released','bk_d3d81d743bc44326','2026-12-04 01:36:34.819275');
INSERT INTO "ledger_entries" VALUES(8,'tx_cf50752b87d0f953','alice','balance',-4800000000,'booking_escrow','bk_539a65decb567f45','2026-12-04 01:36:34.839929');
INSERT INTO "ledger_entries" VALUES(9,'tx_cf50752b87d0f953','alice','escrowed',4800000000,'booking_escrow','bk_539a65decb567f45','2026-12-04 01:36:34.839929');
INSERT INTO "ledger_entries" VALUES(10,'tx_bb7241fe74905e1c','bob','balance',-15000000000,'stake','st_f9fc8384019080d9','2026-12-04 01:36:34.861959');
INSERT INTO "ledger_entries" VALUES(11,'tx_bb7241fe74905e1c','bob','staked',15000000000,'stake','st_f9fc8384019080d9','2026-12-04 01:36:34.861959');
CREATE TABLE miners (
	id VARCHAR(128) NOT NULL, 
	region VARCHAR(64), 
	concurrency INTEGER NOT NULL, 
	capabilities JSON NOT NULL, 
	agent JSON NOT NULL, 
	session_token VARCHAR(64), 
	status_text VARCHAR(32), 
	inflight INTEGER NOT NULL, 
	registered_at DATETIME NOT NULL, 
	last_heartbeat_at DATETIME, 
	deregistered_at DATETIME, 
	lease_version BIGINT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "miners" VALUES('host-01','eu-west',1,'{}','{}','121a5103bad8722e838ad4889235cef0','ONLINE',0,'2026-12-04 01:36:34.754828','2026-12-04 01:36:34.780633',NULL,3);
CREATE TABLE offers (
	id VARCHAR(32) NOT NULL, 
	provider VARCHAR(128) NOT NULL, 
	gpu_model VARCHAR(128) NOT NULL, 
	gpu_memory_gb INTEGER NOT NULL, 
	gpu_count INTEGER NOT NULL, 
	capacity INTEGER NOT NULL, 
	price_per_hour BIGINT NOT NULL, 
	cuda_version VARCHAR(32), 
	region VARCHAR(64), 
	status VARCHAR(16) NOT NULL, 
	attributes JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_offer_provider_model UNIQUE (provider, gpu_model)
);
INSERT INTO "offers" VALUES('off_519dd431751dc920','host-01','NVIDIA H100 80GB HBM3',80,2,1,250000000,NULL,'eu-west','open','{"gpu_ids": ["gpu_2e8832de72fd605b", "gpu_58244df82cc90ec1"], "capabilities": ["cuda12"]}','2026-12-04 01:36:34.872082','2026-12-04 01:36:34.872082');
CREATE TABLE reviews (
	id VARCHAR(32) NOT NULL, 
	gpu_id VARCHAR(32) NOT NULL, 
	booking_id VARCHAR(32) NOT NULL, 
	client_id VARCHAR(128) NOT NULL, 
	rating INTEGER NOT NULL, 
	comment TEXT, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(gpu_id) REFERENCES gpus (id), 
	UNIQUE (booking_id), 
	FOREIGN KEY(booking_id) REFERENCES bookings (id)
);
INSERT INTO "reviews" VALUES('rv_cd06594923523973','gpu_58244df82cc90ec1','bk_d3d81d743bc44326','alice',5,'fast and honest','2026-12-04 01:36:34.832619');
CREATE TABLE stake_rewards (
	id INTEGER NOT NULL, 
	stake_id VARCHAR(32) NOT NULL, 
	miner_id VARCHAR(128) NOT NULL, 
	amount BIGINT NOT NULL, 
	ref VARCHAR(64), 
	tx_id VARCHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(stake_id) REFERENCES stakes (id)
);
CREATE TABLE stakes (
	id VARCHAR(32) NOT NULL, 
	staker VARCHAR(128) NOT NULL, 
	miner_id VARCHAR(128) NOT NULL, 
	amount BIGINT NOT NULL, 
	rewards BIGINT NOT NULL, 
	lock_period_days INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	lock_ends_at DATETIME NOT NULL, 
	unbonding_at DATETIME, 
	completed_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(miner_id) REFERENCES miners (id)
);
INSERT INTO "stakes" VALUES('st_f9fc8384019080d9','bob','host-01',15000000000,0,0,'active','2026-12-04 01:36:34.861959','2026-12-04 01:36:34.861959',NULL,NULL);
CREATE INDEX ix_ledger_entries_tx_id ON ledger_entries (tx_id);
CREATE INDEX ix_ledger_subject_time ON ledger_entries (subject, created_at);
CREATE INDEX ix_ledger_kind ON ledger_entries (kind);
CREATE INDEX ix_bids_client ON bids (client_id);
CREATE UNIQUE INDEX uq_gpu_miner_uuid ON gpus (miner_id, uuid) WHERE deleted_at IS NULL AND uuid IS NOT NULL;
CREATE INDEX ix_gpus_region_price_id ON gpus (lower(region), price_per_hour, id);
CREATE INDEX ix_gpus_price_id ON gpus (price_per_hour, id);
CREATE INDEX ix_gpus_memory_price_id ON gpus (memory_gb, price_per_hour, id);
CREATE INDEX ix_gpus_miner_price_id ON gpus (miner_id, price_per_hour, id);
CREATE INDEX ix_gpus_model_price_id ON gpus (model, price_per_hour, id);
CREATE INDEX ix_stakes_miner_status ON stakes (miner_id, status);
CREATE INDEX ix_stakes_staker ON stakes (staker);
CREATE INDEX ix_bookings_miner_ended ON bookings (miner_id, ended_at);
CREATE INDEX ix_bookings_miner_created ON bookings (miner_id, created_at);
CREATE UNIQUE INDEX uq_booking_active_gpu ON bookings (gpu_id) WHERE status = 'active';
CREATE INDEX ix_bookings_status_end ON bookings (status, end_time);
CREATE INDEX ix_bookings_gpu_created ON bookings (gpu_id, created_at);
CREATE INDEX ix_bookings_client_created ON bookings (client_id, created_at);
CREATE INDEX ix_stake_rewards_stake ON stake_rewards (stake_id, created_at);
CREATE INDEX ix_reviews_gpu_created ON reviews (gpu_id, created_at);
COMMIT;
