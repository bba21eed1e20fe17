/*
 * cc_recv.c - the hub's change-context endpoint (see ccsync.h).
 *
 * One thread owns three ZeroMQ sockets of a private context and polls them
 * together, so nothing here needs a lock:
 *   router  ROUTER bound at cc.endpoint, CURVE server with the hub's secret
 *           key; every message is [routing id][Frame].
 *   zap     REP bound at inproc://zeromq.zap.01 (RFC 27): libzmq asks it
 *           about every CURVE handshake; it admits only the public keys of
 *           the [spoke.ID] sections and answers the spoke id as User-Id,
 *           which libzmq then attaches to each message of that connection.
 *   mon     PAIR on the router's socket monitor: handshake failures and
 *           dropped connections are logged (libzmq drops a connection by
 *           itself when a message exceeds ZMQ_MAXMSGSIZE).
 * The spoke named by a Batch must be the one its key authenticated. Items
 * are decoded one by one and the good prefix goes to cc_apply_batch; the
 * Ack is sent only after it committed. When the database is down no Ack
 * is sent: the spoke resends after its ack timeout, and the hub dedupes.
 * Every bad frame costs one log line and nothing else.
 *
 * Liveness and verify (hub/cc/verify.h): every frame accepted from a spoke
 * marks it seen (cc_stream.last_seen_at, throttled to once a second; an
 * idle spoke sends a hello every few seconds) and remembers the routing id
 * of its connection. About twice a second the thread hands the spokes seen
 * within SEEN_WINDOW_MS to verify_dispatch, which claims their pending
 * verify requests and sends each a LedgerRequest on that connection; the
 * LedgerChunks coming back are stored by verify_store_chunk.
 */
#include "ccsync.h"
#include "hub.h"
#include "log.h"
#include "verify.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define MON_ENDPOINT "inproc://dcmhub-cc-monitor"
#define ZAP_DOMAIN "dcmhub-cc"
#define POLL_MS 200 /* how soon a stop is noticed */
/* ZMQ_MAXMSGSIZE counts the CURVE MESSAGE command (payload + ~33 bytes of
 * box and header), so it must exceed the payload limit */
#define MAXMSG_HEADROOM 4096
#define VERIFY_POLL_MS 500    /* how often pending verify requests are looked for */
#define SEEN_WINDOW_MS 30000  /* a spoke heard from within this is asked directly */
#define TOUCH_MS 1000         /* cc_stream.last_seen_at is written at most this often */
#define MAX_ROUTING_ID 256    /* libzmq's routing ids are at most 255 bytes */

typedef struct {
	const char *id; /* borrowed from the hub's configuration */
	uint8_t key[32];
	/* its latest connection, for hub -> spoke requests */
	uint8_t rid[MAX_ROUTING_ID];
	size_t rid_len;
	int64_t seen_ms;  /* last accepted frame (monotonic); 0 never */
	int64_t touch_ms; /* last cc_stream write */
} known_spoke;

struct cc_receiver {
	hub *h;
	void *ctx, *router, *zap, *mon;
	known_spoke *spokes;
	int n_spokes;
	atomic_int stop;
	pthread_t thread;
	int started;
	int64_t verify_at_ms; /* next verify_dispatch */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static known_spoke *spoke_by_id(cc_receiver *r, const char *id)
{
	for (int i = 0; i < r->n_spokes; i++)
		if (strcmp(r->spokes[i].id, id) == 0)
			return &r->spokes[i];
	return NULL;
}

/* A frame from spoke user on connection rid was accepted: remember both, mark it seen. */
static void spoke_seen(cc_receiver *r, zmq_msg_t *rid, const char *user, const char *peer, int touch_db)
{
	known_spoke *k = spoke_by_id(r, user);
	char err[512];
	int64_t now = now_ms();

	if (!k)
		return;
	if (zmq_msg_size(rid) <= MAX_ROUTING_ID) {
		memcpy(k->rid, zmq_msg_data(rid), zmq_msg_size(rid));
		k->rid_len = zmq_msg_size(rid);
	}
	k->seen_ms = now;
	if (touch_db && now - k->touch_ms >= TOUCH_MS) {
		if (verify_touch_stream(r->h, user, peer, err, sizeof(err)) == 0)
			k->touch_ms = now;
		else
			DH_DEBUG("cc: %s", err);
	}
}

/* verify_dispatch's sender: a LedgerRequest on the spoke's latest connection. */
static int send_ledger_request(void *arg, const char *spoke_id, uint64_t request_id, const char *study_uid)
{
	cc_receiver *r = arg;
	known_spoke *k = spoke_by_id(r, spoke_id);
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = -1;

	if (!k || !k->rid_len)
		goto done;
	if (dh_ccwire_encode_ledger_request(spoke_id, request_id, study_uid, &buf, &len) != 0) {
		DH_ERROR("cc: verify %" PRIu64 ": cannot encode the ledger request", request_id);
		goto done;
	}
	if (zmq_send(r->router, k->rid, k->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(r->router, buf, len, ZMQ_DONTWAIT) < 0) {
		DH_WARN("cc: verify %" PRIu64 ": ledger request to spoke %s not sent: %s", request_id, spoke_id,
			zmq_strerror(errno));
		goto done;
	}
	rc = 0;
done:
	free(buf);
	return rc;
}

/* Sends the pending verify requests of the spokes connected here. */
static void verify_tick(cc_receiver *r)
{
	const char **ids = NULL;
	size_t n = 0;
	char err[512];
	int64_t now = now_ms();

	if (now < r->verify_at_ms || r->n_spokes == 0)
		return;
	r->verify_at_ms = now + VERIFY_POLL_MS;
	if (!(ids = calloc((size_t)r->n_spokes, sizeof(*ids))))
		return; /* tried again at the next tick */
	for (int i = 0; i < r->n_spokes; i++)
		if (r->spokes[i].rid_len && r->spokes[i].seen_ms && now - r->spokes[i].seen_ms < SEEN_WINDOW_MS)
			ids[n++] = r->spokes[i].id;
	if (n && verify_dispatch(r->h, ids, n, send_ledger_request, r, err, sizeof(err)) != 0)
		DH_WARN("cc: %s", err);
	free(ids);
}

/* ------------------------------------------------------------------ */
/* ZAP (RFC 27) */

static const char *spoke_of_key(const cc_receiver *r, const uint8_t *key)
{
	for (int i = 0; i < r->n_spokes; i++)
		if (memcmp(r->spokes[i].key, key, 32) == 0)
			return r->spokes[i].id;
	return NULL;
}

/* Copies frame k of a request as a NUL-terminated string (truncated). */
static void part_str(zmq_msg_t *parts, int n, int k, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	if (k >= n)
		return;
	len = zmq_msg_size(&parts[k]);
	if (len >= cap)
		len = cap - 1;
	memcpy(out, zmq_msg_data(&parts[k]), len);
	out[len] = '\0';
}

static void zap_reply(void *sock, zmq_msg_t *req_id, const char *status, const char *text, const char *user)
{
	zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(sock, req_id ? zmq_msg_data(req_id) : "", req_id ? zmq_msg_size(req_id) : 0, ZMQ_SNDMORE);
	zmq_send(sock, status, strlen(status), ZMQ_SNDMORE);
	zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
	zmq_send(sock, "", 0, 0);
}

/*
 * One ZAP request: version, request id, domain, address, routing id,
 * mechanism, credentials... Anything but CURVE with a listed key is refused.
 */
static void zap_handle(cc_receiver *r)
{
	enum { MAX_PARTS = 8 };
	zmq_msg_t parts[MAX_PARTS];
	char version[8], address[128], mech[16], key_z85[41] = "?";
	const char *spoke = NULL;
	int n = 0, more = 1;

	while (more) {
		zmq_msg_t tmp, *m = n < MAX_PARTS ? &parts[n] : &tmp;
		zmq_msg_init(m);
		if (zmq_msg_recv(m, r->zap, 0) < 0) {
			zmq_msg_close(m);
			break;
		}
		more = zmq_msg_more(m);
		if (n < MAX_PARTS)
			n++;
		else
			zmq_msg_close(m);
	}
	part_str(parts, n, 0, version, sizeof(version));
	part_str(parts, n, 3, address, sizeof(address));
	part_str(parts, n, 5, mech, sizeof(mech));
	if (n < 7 || strcmp(version, "1.0") != 0 || strcmp(mech, "CURVE") != 0 || zmq_msg_size(&parts[6]) != 32) {
		DH_WARN("cc: refused a connection from %s: mechanism %s is not CURVE", address[0] ? address : "?",
			mech[0] ? mech : "?");
		zap_reply(r->zap, n > 1 ? &parts[1] : NULL, "400", "CURVE required", "");
		goto done;
	}
	zmq_z85_encode(key_z85, zmq_msg_data(&parts[6]), 32);
	spoke = spoke_of_key(r, zmq_msg_data(&parts[6]));
	if (!spoke) {
		DH_WARN("cc: refused a connection from %s: unknown CURVE key %s (no [spoke.ID] has it)", address,
			key_z85);
		zap_reply(r->zap, &parts[1], "400", "unknown key", "");
		goto done;
	}
	DH_DEBUG("cc: spoke %s authenticated from %s", spoke, address);
	zap_reply(r->zap, &parts[1], "200", "OK", spoke);
done:
	for (int i = 0; i < n; i++)
		zmq_msg_close(&parts[i]);
}

/* ------------------------------------------------------------------ */
/* socket monitor */

static void monitor_handle(cc_receiver *r)
{
	zmq_msg_t ev, addr;
	uint16_t event = 0;
	uint32_t value = 0;

	zmq_msg_init(&ev);
	zmq_msg_init(&addr);
	if (zmq_msg_recv(&ev, r->mon, 0) < 0)
		goto done;
	if (zmq_msg_more(&ev))
		zmq_msg_recv(&addr, r->mon, 0);
	if (zmq_msg_size(&ev) < 6)
		goto done;
	memcpy(&event, zmq_msg_data(&ev), 2);
	memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
	switch (event) {
	case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
		DH_WARN("cc: a CURVE handshake failed (no detail, errno %u)", value);
		break;
	case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
		/* a wrong server key shows here: the peer's HELLO does not decrypt */
		DH_WARN("cc: a CURVE handshake failed: protocol error 0x%x (wrong hub public key at the spoke?)",
			value);
		break;
	case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
		DH_DEBUG("cc: a CURVE handshake was refused (status %u)", value);
		break;
	case ZMQ_EVENT_DISCONNECTED:
		DH_INFO("cc: a spoke connection closed (peer gone, or a message far over %u bytes)",
			DH_CCWIRE_MAX_FRAME);
		break;
	default:
		break;
	}
done:
	zmq_msg_close(&ev);
	zmq_msg_close(&addr);
}

/* ------------------------------------------------------------------ */
/* frames */

static void send_ack(cc_receiver *r, zmq_msg_t *rid, const char *spoke, uint64_t through,
		     const cc_refusal *refused, size_t n_refused)
{
	dh_ccwire_refusal *wr = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	if (n_refused > DH_CCWIRE_MAX_ITEMS)
		n_refused = DH_CCWIRE_MAX_ITEMS; /* cannot happen: at most one per item */
	if (n_refused && !(wr = calloc(n_refused, sizeof(*wr)))) {
		DH_ERROR("cc: spoke %s: out of memory for the ack", spoke);
		goto done;
	}
	for (size_t i = 0; i < n_refused; i++) {
		wr[i].sequence = refused[i].sequence;
		wr[i].uuid = refused[i].uuid;
		wr[i].reason = refused[i].reason;
		wr[i].permanent = refused[i].permanent;
	}
	if (dh_ccwire_encode_ack(spoke, through, wr, n_refused, &buf, &len) != 0) {
		DH_ERROR("cc: spoke %s: cannot encode the ack", spoke);
		goto done;
	}
	/* never blocks: a ROUTER drops what it cannot route or queue, and the
	 * spoke then resends after its ack timeout */
	if (zmq_send(r->router, zmq_msg_data(rid), zmq_msg_size(rid), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(r->router, buf, len, ZMQ_DONTWAIT) < 0)
		DH_WARN("cc: spoke %s: ack through %" PRIu64 " not sent: %s", spoke, through, zmq_strerror(errno));
	else
		DH_DEBUG("cc: spoke %s: ack through %" PRIu64 " (%zu refused)", spoke, through, n_refused);
done:
	free(wr);
	free(buf);
}

/* One frame from an authenticated spoke (user) at peer. */
static void handle_frame(cc_receiver *r, zmq_msg_t *rid, const char *user, const char *peer, const uint8_t *data,
			 size_t len)
{
	dh_ccwire_frame *f = NULL;
	dh_cc **ccs = NULL;
	dh_ccwire_item *bodies = NULL;
	cc_refusal *refused = NULL;
	size_t n = 0, n_ok = 0, n_refused = 0;
	uint64_t through = 0;
	char why[512], err[512];

	if (dh_ccwire_decode(data, len, &f, why, sizeof(why)) != 0) {
		DH_WARN("cc: spoke %s (%s): dropped a bad frame of %zu bytes: %s", user, peer, len, why);
		goto done;
	}
	if (dh_ccwire_frame_type(f) != DH_CCWIRE_BATCH && dh_ccwire_frame_type(f) != DH_CCWIRE_LEDGER_CHUNK) {
		DH_WARN("cc: spoke %s (%s): dropped a hub-to-spoke frame (spokes send batches and ledger chunks)",
			user, peer);
		goto done;
	}
	if (strcmp(dh_ccwire_frame_spoke_id(f), user) != 0) {
		DH_WARN("cc: spoke %s (%s): dropped a %s naming spoke '%s' (its key authenticates %s)", user, peer,
			dh_ccwire_frame_type(f) == DH_CCWIRE_BATCH ? "batch" : "ledger chunk", dh_ccwire_frame_spoke_id(f),
			user);
		goto done;
	}
	n = dh_ccwire_batch_count(f);
	/* a batch with items marks the spoke seen in cc_apply_batch's own transaction */
	spoke_seen(r, rid, user, peer, dh_ccwire_frame_type(f) != DH_CCWIRE_BATCH || n == 0);
	if (dh_ccwire_frame_type(f) == DH_CCWIRE_LEDGER_CHUNK) {
		if (verify_store_chunk(r->h, user, f, err, sizeof(err)) != 0)
			DH_ERROR("cc: spoke %s (%s): %s", user, peer, err);
		goto done;
	}
	if (n == 0) { /* hello (or heartbeat): where does the hub stand? */
		if (cc_apply_received_through(r->h, user, &through, err, sizeof(err)) != 0) {
			DH_ERROR("cc: spoke %s (%s): hello not answered: %s", user, peer, err);
			goto done;
		}
		DH_DEBUG("cc: spoke %s (%s): hello; hub holds through %" PRIu64, user, peer, through);
		send_ack(r, rid, user, through, NULL, 0);
		goto done;
	}
	if (!(ccs = calloc(n, sizeof(*ccs))) || !(bodies = calloc(n, sizeof(*bodies)))) {
		DH_ERROR("cc: spoke %s: out of memory for a batch of %zu", user, n);
		goto done;
	}
	/* decode up to the first bad item: the ones before it are still good */
	for (n_ok = 0; n_ok < n; n_ok++) {
		bodies[n_ok] = dh_ccwire_batch_item(f, n_ok);
		if (dh_cc_decode(bodies[n_ok].data, bodies[n_ok].len, &ccs[n_ok], why, sizeof(why)) != 0) {
			DH_WARN("cc: spoke %s (%s): item %zu of %zu rejected, batch cut there: %s", user, peer,
				n_ok + 1, n, why);
			break;
		}
		if (strcmp(dh_cc_spoke_id(ccs[n_ok]), user) != 0) {
			DH_WARN("cc: spoke %s (%s): item %zu of %zu (sequence %" PRIu64
				") names spoke '%s', batch cut there",
				user, peer, n_ok + 1, n, dh_cc_sequence(ccs[n_ok]), dh_cc_spoke_id(ccs[n_ok]));
			dh_cc_free(ccs[n_ok]);
			ccs[n_ok] = NULL;
			break;
		}
	}
	if (n_ok == 0) {
		/* nothing applicable: tell the spoke where the hub stands, so it
		 * does not wait for its ack timeout */
		if (cc_apply_received_through(r->h, user, &through, err, sizeof(err)) == 0)
			send_ack(r, rid, user, through, NULL, 0);
		goto done;
	}
	err[0] = '\0';
	if (cc_apply_batch(r->h, user, peer, ccs, bodies, n_ok, &through, &refused, &n_refused, err,
			   sizeof(err)) != 0) {
		DH_ERROR("cc: spoke %s (%s): batch of %zu (sequences %" PRIu64 "-%" PRIu64
			 ") not applied, not acknowledged: %s",
			 user, peer, n_ok, dh_cc_sequence(ccs[0]), dh_cc_sequence(ccs[n_ok - 1]), err);
		goto done;
	}
	send_ack(r, rid, user, through, refused, n_refused);
done:
	if (ccs)
		for (size_t i = 0; i < n; i++)
			dh_cc_free(ccs[i]);
	free(ccs);
	free(bodies);
	free(refused);
	dh_ccwire_frame_free(f);
}

/* One message on the router: [routing id][payload], nothing else. */
static void router_handle(cc_receiver *r)
{
	zmq_msg_t rid, payload;
	const char *user, *peer;
	int extra_parts = 0;

	zmq_msg_init(&rid);
	zmq_msg_init(&payload);
	if (zmq_msg_recv(&rid, r->router, 0) < 0)
		goto done;
	if (!zmq_msg_more(&rid) || zmq_msg_recv(&payload, r->router, 0) < 0)
		goto done;
	for (int more = zmq_msg_more(&payload); more; extra_parts++) {
		zmq_msg_t extra;
		zmq_msg_init(&extra);
		more = zmq_msg_recv(&extra, r->router, 0) >= 0 && zmq_msg_more(&extra);
		zmq_msg_close(&extra);
	}
	user = zmq_msg_gets(&payload, "User-Id");
	peer = zmq_msg_gets(&payload, "Peer-Address");
	if (!peer)
		peer = "?";
	if (!user || !*user) {
		/* cannot happen with the ZAP handler bound; refuse rather than trust */
		DH_WARN("cc: dropped a message from %s without an authenticated spoke", peer);
		goto done;
	}
	if (extra_parts) {
		DH_WARN("cc: spoke %s (%s): dropped a message of %d parts (one frame per message)", user, peer,
			extra_parts + 1);
		goto done;
	}
	handle_frame(r, &rid, user, peer, zmq_msg_data(&payload), zmq_msg_size(&payload));
done:
	zmq_msg_close(&rid);
	zmq_msg_close(&payload);
}

static void *receiver_main(void *arg)
{
	cc_receiver *r = arg;

	dh_log_set_context("cc-recv");
	while (!r->h->stop && !atomic_load(&r->stop)) {
		zmq_pollitem_t items[3] = {
			{ r->zap, 0, ZMQ_POLLIN, 0 },
			{ r->router, 0, ZMQ_POLLIN, 0 },
			{ r->mon, 0, ZMQ_POLLIN, 0 },
		};
		int n = zmq_poll(items, r->mon ? 3 : 2, POLL_MS);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			DH_ERROR("cc: zmq_poll: %s", zmq_strerror(errno));
			break;
		}
		/* ZAP first: handshakes wait on it */
		if (items[0].revents & ZMQ_POLLIN)
			zap_handle(r);
		if (items[1].revents & ZMQ_POLLIN)
			router_handle(r);
		if (r->mon && (items[2].revents & ZMQ_POLLIN))
			monitor_handle(r);
		verify_tick(r);
	}
	dh_log_set_context(NULL);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* start, stop */

static void receiver_free(cc_receiver *r)
{
	int zero = 0;

	if (!r)
		return;
	if (r->router && r->mon)
		zmq_socket_monitor(r->router, NULL, 0);
	if (r->mon) {
		zmq_setsockopt(r->mon, ZMQ_LINGER, &zero, sizeof(zero));
		zmq_close(r->mon);
	}
	if (r->router)
		zmq_close(r->router);
	if (r->zap)
		zmq_close(r->zap);
	if (r->ctx)
		zmq_ctx_term(r->ctx);
	free(r->spokes);
	free(r);
}

static int load_spokes(cc_receiver *r, const hub_config *cfg)
{
	if (cfg->n_spokes && !(r->spokes = calloc((size_t)cfg->n_spokes, sizeof(*r->spokes))))
		return -1;
	for (int i = 0; i < cfg->n_spokes; i++) {
		const hub_spoke *sp = &cfg->spokes[i];
		if (!sp->public_key || strlen(sp->public_key) != 40 ||
		    !zmq_z85_decode(r->spokes[r->n_spokes].key, sp->public_key)) {
			DH_WARN("cc: [spoke.%s] has no valid public_key; it cannot send change contexts", sp->id);
			continue;
		}
		r->spokes[r->n_spokes++].id = sp->id;
	}
	return 0;
}

int cc_recv_start(struct hub *h)
{
	cc_receiver *r = NULL;
	char secret[41] = "", pub[41] = "", err[512];
	const int one = 1, zero = 0;
	const int64_t maxmsg = (int64_t)DH_CCWIRE_MAX_FRAME + MAXMSG_HEADROOM;
	int rc = -1;

	if (!h->cfg.cc_secret_key_file || !h->cfg.cc_secret_key_file[0]) {
		DH_INFO("cc endpoint off: cc.secret_key_file is empty (hubctl keygen makes one)");
		return 0;
	}
	if (!zmq_has("curve")) {
		DH_ERROR("cc: this libzmq has no CURVE security; the cc endpoint cannot start");
		return -1;
	}
	if (dh_ccwire_load_secret(h->cfg.cc_secret_key_file, secret, pub, err, sizeof(err)) != 0) {
		DH_ERROR("cc: %s", err);
		goto done;
	}
	if (!(r = calloc(1, sizeof(*r))) || load_spokes(r, &h->cfg) != 0) {
		DH_ERROR("cc: out of memory");
		goto done;
	}
	r->h = h;
	if (!(r->ctx = zmq_ctx_new()))
		goto zmq_fail;
	/* the ZAP handler must exist before the first handshake */
	if (!(r->zap = zmq_socket(r->ctx, ZMQ_REP)) || zmq_setsockopt(r->zap, ZMQ_LINGER, &zero, sizeof(zero)) ||
	    zmq_bind(r->zap, ZAP_ENDPOINT))
		goto zmq_fail;
	if (!(r->router = zmq_socket(r->ctx, ZMQ_ROUTER)) ||
	    zmq_setsockopt(r->router, ZMQ_LINGER, &zero, sizeof(zero)) ||
	    zmq_setsockopt(r->router, ZMQ_CURVE_SERVER, &one, sizeof(one)) ||
	    zmq_setsockopt(r->router, ZMQ_CURVE_SECRETKEY, secret, 40) ||
	    zmq_setsockopt(r->router, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) ||
	    /* headroom: a frame just over the limit reaches the decoder and
	     * is logged as oversized, the connection stays; libzmq drops the
	     * connection of anything bigger */
	    zmq_setsockopt(r->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)))
		goto zmq_fail;
	/* the monitor is a convenience: without it only the log is poorer */
	if (zmq_socket_monitor(r->router, MON_ENDPOINT,
			       ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
				       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) == 0) {
		if (!(r->mon = zmq_socket(r->ctx, ZMQ_PAIR)) || zmq_connect(r->mon, MON_ENDPOINT) != 0) {
			DH_WARN("cc: socket monitor unavailable: %s", zmq_strerror(errno));
			if (r->mon)
				zmq_close(r->mon);
			r->mon = NULL;
			zmq_socket_monitor(r->router, NULL, 0);
		}
	}
	if (zmq_bind(r->router, h->cfg.cc_endpoint) != 0) {
		DH_ERROR("cc: cannot bind %s: %s", h->cfg.cc_endpoint, zmq_strerror(errno));
		goto done;
	}
	if (pthread_create(&r->thread, NULL, receiver_main, r) != 0) {
		DH_ERROR("cc: cannot start the receiver thread");
		goto done;
	}
	r->started = 1;
	DH_INFO("cc endpoint %s (CURVE public key %s), %d spoke key(s) admitted", h->cfg.cc_endpoint, pub,
		r->n_spokes);
	h->cc_receiver = r;
	r = NULL; /* the hub's now */
	rc = 0;
	goto done;
zmq_fail:
	DH_ERROR("cc: cannot set up the ZeroMQ sockets: %s", zmq_strerror(errno));
done:
	explicit_bzero(secret, sizeof(secret));
	receiver_free(r);
	return rc;
}

void cc_recv_stop(struct hub *h)
{
	cc_receiver *r = h->cc_receiver;

	if (!r)
		return;
	h->cc_receiver = NULL;
	atomic_store(&r->stop, 1);
	if (r->started)
		pthread_join(r->thread, NULL);
	receiver_free(r);
}
