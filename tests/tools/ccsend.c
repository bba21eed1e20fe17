/*
 * ccsend.c - a test spoke for the hub's change-context endpoint: sends one
 * frame over a CURVE DEALER socket and prints the hub's Ack.
 *
 * usage: ccsend --endpoint EP --server-key HUBPUB --secret-file FILE
 *               --spoke ID [--timeout S] MODE
 * MODE:
 *   --hello                 an empty batch (the hub answers where it stands)
 *   --garbage N             N random bytes (first byte an invalid protobuf tag)
 *   --truncated             a valid one-cc batch frame cut in half
 *   --oversized             DH_CCWIRE_MAX_FRAME + 1 bytes (just over the limit)
 *   --wrong-spoke           an empty batch naming spoke ID-OTHER
 *   --attr STUDY_UID SEQ    one ATTRIBUTE_CHANGE (Study Description) of that
 *                           study with sequence SEQ
 *
 * Output when an Ack arrives: "ack THROUGH" and one line
 * "refused SEQ permanent|parked REASON" per refusal.
 * Exit status: 0 Ack received, 3 none within the timeout (default 5 s),
 * 2 bad usage, 1 other errors.
 */
#include "cc.h"
#include "ccwire.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

enum { M_NONE, M_HELLO, M_GARBAGE, M_TRUNCATED, M_OVERSIZED, M_WRONG_SPOKE, M_ATTR };

static void usage(void)
{
	fprintf(stderr, "usage: ccsend --endpoint EP --server-key HUBPUB --secret-file FILE --spoke ID [--timeout S]\n"
			"              --hello | --garbage N | --truncated | --oversized | --wrong-spoke |\n"
			"              --attr STUDY_UID SEQ\n");
}

/* One ATTRIBUTE_CHANGE of study, encoded (malloc'd), or NULL. */
static uint8_t *attr_cc(const char *spoke, const char *study, uint64_t seq, size_t *len)
{
	dh_cc *cc = NULL;
	uint8_t *buf = NULL;
	char why[256];

	if (dh_cc_new(&cc, DH_CC_ATTRIBUTE_CHANGE, spoke, seq, NULL, 0, "ccsend", "transport test") != 0 ||
	    dh_cc_attr_set_target(cc, DH_CC_LEVEL_STUDY, NULL, NULL, study, NULL, NULL) != 0 ||
	    dh_cc_add_attr(cc, -1, 0x00081030, "LO", "", "changed by ccsend") != 0 ||
	    dh_cc_encode(cc, &buf, len) != 0) {
		why[0] = '\0';
		if (cc)
			dh_cc_validate(cc, why, sizeof(why));
		fprintf(stderr, "ccsend: cannot build the cc: %s\n", why[0] ? why : "out of memory");
		buf = NULL;
	}
	dh_cc_free(cc);
	return buf;
}

int main(int argc, char **argv)
{
	const char *endpoint = NULL, *server_key = NULL, *secret_file = NULL, *spoke = NULL, *study = NULL;
	long timeout = 5, garbage = 0;
	uint64_t seq = 0;
	int mode = M_NONE, rc = 1;
	char sec[41], pub[41], err[512], other[128];
	void *ctx = NULL, *sock = NULL;
	uint8_t *frame = NULL, *item = NULL;
	size_t len = 0, item_len = 0;
	const int zero = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), exit(2), ""))
		if (strcmp(a, "--endpoint") == 0)
			endpoint = NEXT();
		else if (strcmp(a, "--server-key") == 0)
			server_key = NEXT();
		else if (strcmp(a, "--secret-file") == 0)
			secret_file = NEXT();
		else if (strcmp(a, "--spoke") == 0)
			spoke = NEXT();
		else if (strcmp(a, "--timeout") == 0)
			timeout = strtol(NEXT(), NULL, 10);
		else if (strcmp(a, "--hello") == 0)
			mode = M_HELLO;
		else if (strcmp(a, "--garbage") == 0) {
			mode = M_GARBAGE;
			garbage = strtol(NEXT(), NULL, 10);
		} else if (strcmp(a, "--truncated") == 0)
			mode = M_TRUNCATED;
		else if (strcmp(a, "--oversized") == 0)
			mode = M_OVERSIZED;
		else if (strcmp(a, "--wrong-spoke") == 0)
			mode = M_WRONG_SPOKE;
		else if (strcmp(a, "--attr") == 0) {
			mode = M_ATTR;
			study = NEXT();
			seq = strtoull(NEXT(), NULL, 10);
		} else {
			usage();
			return 2;
		}
#undef NEXT
	}
	if (!endpoint || !server_key || !secret_file || !spoke || mode == M_NONE || timeout < 0 ||
	    (mode == M_GARBAGE && garbage <= 0) || (mode == M_ATTR && seq == 0)) {
		usage();
		return 2;
	}
	if (dh_ccwire_load_secret(secret_file, sec, pub, err, sizeof(err)) != 0) {
		fprintf(stderr, "ccsend: %s\n", err);
		return 1;
	}

	switch (mode) {
	case M_HELLO:
		if (dh_ccwire_encode_batch(spoke, NULL, 0, &frame, &len) != 0)
			goto encode_fail;
		break;
	case M_WRONG_SPOKE:
		snprintf(other, sizeof(other), "%s-OTHER", spoke);
		if (dh_ccwire_encode_batch(other, NULL, 0, &frame, &len) != 0)
			goto encode_fail;
		break;
	case M_GARBAGE:
		len = (size_t)garbage;
		if (!(frame = malloc(len)))
			goto encode_fail;
		srand((unsigned)time(NULL));
		for (size_t i = 0; i < len; i++)
			frame[i] = (uint8_t)rand();
		frame[0] = 0xff; /* wire type 7: no protobuf parser accepts it */
		break;
	case M_OVERSIZED:
		len = (size_t)DH_CCWIRE_MAX_FRAME + 1;
		if (!(frame = calloc(1, len)))
			goto encode_fail;
		break;
	case M_TRUNCATED:
	case M_ATTR: {
		if (!(item = attr_cc(spoke, mode == M_ATTR ? study : "1.2.826.0.1.3680043.2.1125.1", mode == M_ATTR ? seq : 1,
				     &item_len)))
			goto done;
		dh_ccwire_item it = { item, item_len };
		if (dh_ccwire_encode_batch(spoke, &it, 1, &frame, &len) != 0)
			goto encode_fail;
		if (mode == M_TRUNCATED)
			len /= 2;
		break;
	}
	}

	if (!(ctx = zmq_ctx_new()) || !(sock = zmq_socket(ctx, ZMQ_DEALER)) ||
	    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero)) ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_key, strlen(server_key)) ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 40) || zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 40) ||
	    zmq_connect(sock, endpoint)) {
		fprintf(stderr, "ccsend: %s\n", zmq_strerror(errno));
		goto done;
	}
	if (zmq_send(sock, frame, len, 0) < 0) {
		fprintf(stderr, "ccsend: send: %s\n", zmq_strerror(errno));
		goto done;
	}
	for (;;) {
		zmq_pollitem_t pi = { sock, 0, ZMQ_POLLIN, 0 };
		zmq_msg_t msg;
		dh_ccwire_frame *f = NULL;
		char why[256];
		int n = zmq_poll(&pi, 1, timeout * 1000);

		if (n < 0) {
			fprintf(stderr, "ccsend: poll: %s\n", zmq_strerror(errno));
			goto done;
		}
		if (n == 0) {
			fprintf(stderr, "ccsend: no answer within %ld s\n", timeout);
			rc = 3;
			goto done;
		}
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, sock, 0) < 0) {
			zmq_msg_close(&msg);
			continue;
		}
		if (dh_ccwire_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &f, why, sizeof(why)) != 0 ||
		    dh_ccwire_frame_type(f) != DH_CCWIRE_ACK) {
			fprintf(stderr, "ccsend: unexpected frame from the hub: %s\n", f ? "not an ack" : why);
			dh_ccwire_frame_free(f);
			zmq_msg_close(&msg);
			goto done;
		}
		printf("ack %" PRIu64 "\n", dh_ccwire_ack_through(f));
		for (size_t i = 0; i < dh_ccwire_ack_refused_count(f); i++) {
			dh_ccwire_refusal r = dh_ccwire_ack_refused(f, i);
			printf("refused %" PRIu64 " %s %s\n", r.sequence, r.permanent ? "permanent" : "parked", r.reason);
		}
		dh_ccwire_frame_free(f);
		zmq_msg_close(&msg);
		rc = 0;
		break;
	}
	goto done;
encode_fail:
	fprintf(stderr, "ccsend: cannot encode the frame\n");
done:
	if (sock)
		zmq_close(sock);
	if (ctx)
		zmq_ctx_term(ctx);
	free(frame);
	free(item);
	return rc;
}
