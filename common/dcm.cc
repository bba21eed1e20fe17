/*
 * dcm.cc - the DCMTK adapter behind dcm.h (the project's only C++).
 *
 * NOTES
 * - We use DCMTK's association and DIMSE layers directly (ASC_*, DIMSE_*),
 *   not DcmSCP/DcmSCPPool: the pool in 3.6.7 leaks per association and
 *   rejects when busy, and the C side wants to own threads and policy.
 * - Several threads may sit in ASC_receiveAssociation on one network: each
 *   polls the listening socket and then blocks in accept(); whichever wins
 *   reads the A-ASSOCIATE-RQ with the network's ACSE time-out, so one slow
 *   peer holds one acceptor thread for at most that long.
 * - C-STORE data sets are streamed to a file (DIMSE_receiveDataSetInFile)
 *   without passing through the parser: the bytes on disk are the bytes on
 *   the wire, which keeps every element, private or broken, as sent.
 * - Nothing here throws: DCMTK reports by OFCondition, and we map those to
 *   dh_dcm_rc with a message.
 */
#include "dcm.h"
extern "C" {
#include "hash.h"
}

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcostrmf.h>
#include <dcmtk/dcmdata/dcpath.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmtls/tlslayer.h>
#include <dcmtk/dcmtls/tlstrans.h>
#include <dcmtk/oflog/oflog.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <new>
#include <vector>

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

struct dh_dcm_net {
	T_ASC_Network *net;
	OFBool secure; /* every connection is TLS (the transport layer is a dh_dcm_tls's) */
};

/*
 * DCMTK runs the TLS handshake inside ASC_receiveAssociation /
 * ASC_requestAssociation with only its 60 s socket time-outs: a peer that
 * connects and stays silent would hold an acceptor thread (and a shutdown),
 * or a C-MOVE / storage commitment delivery, that long. These two classes
 * bound the handshake by the listener's ARTIM time-out, or the requester's
 * association time-out, and put the socket's time-outs back for the
 * association that follows.
 */
class BoundedTLSConnection : public DcmTLSConnection {
public:
	BoundedTLSConnection(DcmNativeSocketType s, SSL *ssl, int limit_s)
		: DcmTLSConnection(s, ssl), limit(limit_s) {}
	OFCondition serverSideHandshake() override
	{
		return bounded(true);
	}
	OFCondition clientSideHandshake() override
	{
		return bounded(false);
	}

private:
	OFCondition bounded(bool server_side)
	{
		int fd = (int)getSocket();
		struct timeval old_rcv = { 0, 0 }, old_snd = { 0, 0 }, tv = { limit, 0 };
		socklen_t len = sizeof(old_rcv);
		int saved = getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &old_rcv, &len) == 0;
		len = sizeof(old_snd);
		saved = saved && getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &old_snd, &len) == 0;
		if (saved && limit > 0) {
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		}
		/* qualified calls: the base class's handshake, not ours again */
		OFCondition c = server_side ? DcmTLSConnection::serverSideHandshake()
					    : DcmTLSConnection::clientSideHandshake();
		if (saved && limit > 0) {
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &old_rcv, sizeof(old_rcv));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &old_snd, sizeof(old_snd));
		}
		return c;
	}

	int limit;
};

/* The time-out of the association this thread is requesting (assoc_request sets it). */
static thread_local int request_timeout_s;

class BoundedTLSLayer : public DcmTLSTransportLayer {
public:
	explicit BoundedTLSLayer(T_ASC_NetworkRole role) : DcmTLSTransportLayer(role, NULL, OFFalse) {}
	DcmTransportConnection *createConnection(DcmNativeSocketType s, OFBool secure) override
	{
		if (!secure || !getNativeHandle())
			return DcmTLSTransportLayer::createConnection(s, secure);
		SSL *ssl = SSL_new(getNativeHandle());
		if (!ssl)
			return NULL;
		SSL_set_fd(ssl, (int)s);
		return new BoundedTLSConnection(s, ssl, server ? handshake_timeout : request_timeout_s);
	}
	int handshake_timeout = 0; /* listener: seconds; 0: DCMTK's socket time-out */
	bool server = false;
};

struct dh_dcm_tls {
	BoundedTLSLayer *layer;
};

struct dh_dcm_assoc {
	T_ASC_Association *assoc;
	T_ASC_Network *own_net;    /* requestor side: the network we created */
	T_DIMSE_Message last;      /* last command received (for C-STORE file meta) */
	T_ASC_PresentationContextID last_pcid; /* its context: where a C-CANCEL for it arrives */
	std::vector<T_ASC_PresentationContext> proposed;
	SOPClassExtendedNegotiationSubItemList *accepted_ext;
	char calling[17], called[17], peer[64];
	char rsp_instance[65];     /* Affected SOP Instance UID of the last N-CREATE/N-SET response */
};

struct dh_dcm_ds {
	DcmFileFormat ff;
};

static void set_err(char *err, size_t len, const char *what, const OFCondition &c)
{
	if (err && len)
		snprintf(err, len, "%s: %s", what, c.text());
}

static void set_err_text(char *err, size_t len, const char *text)
{
	if (err && len)
		snprintf(err, len, "%s", text);
}

static void copy_str(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

/* ---- process set-up ---------------------------------------------------- */

extern "C" void dh_dcm_global_init(int log_level)
{
	/* DCMTK reads TCP_NODELAY per socket; Nagle costs ~40-90 ms per small PDU */
	setenv("TCP_NODELAY", "1", 1);
	DJDecoderRegistration::registerCodecs();
	DJLSDecoderRegistration::registerCodecs();
	DcmRLEDecoderRegistration::registerCodecs();
	/* OpenSSL's global state, once, before threads make TLS contexts */
	DcmTLSTransportLayer::initializeOpenSSL();
	OFLogger::LogLevel lvl = OFLogger::ERROR_LOG_LEVEL;
	if (log_level >= 4)
		lvl = OFLogger::DEBUG_LOG_LEVEL;
	else if (log_level >= 3)
		lvl = OFLogger::WARN_LOG_LEVEL;
	OFLog::configure(lvl);
	/* bounded TCP connect for every association we request */
	dcmConnectionTimeout.set(10);
	/* keep meta headers as received on write; do not add group lengths */
	dcmEnableAutomaticInputDataCorrection.set(OFFalse);
}

/* ---- acceptor ---------------------------------------------------------- */

extern "C" int dh_dcm_net_listen(dh_dcm_net **out, int port, int acse_timeout, char *err, size_t errlen)
{
	dh_dcm_net *n = new dh_dcm_net();
	OFCondition c = ASC_initializeNetwork(NET_ACCEPTOR, port, acse_timeout, &n->net);
	if (c.bad()) {
		set_err(err, errlen, "cannot listen", c);
		delete n;
		return DH_DCM_ERROR;
	}
	*out = n;
	return DH_DCM_OK;
}

extern "C" void dh_dcm_net_free(dh_dcm_net *net)
{
	if (!net)
		return;
	if (net->net)
		ASC_dropNetwork(&net->net);
	delete net;
}

static void assoc_destroy(dh_dcm_assoc *a)
{
	if (!a)
		return;
	if (a->assoc) {
		ASC_dropSCPAssociation(a->assoc, 1);
		ASC_destroyAssociation(&a->assoc);
	}
	if (a->accepted_ext) {
		for (SOPClassExtendedNegotiationSubItem *i : *a->accepted_ext)
			delete i;
		delete a->accepted_ext;
	}
	if (a->own_net)
		ASC_dropNetwork(&a->own_net);
	delete a;
}

extern "C" int dh_dcm_net_accept(dh_dcm_net *net, int timeout_s, int max_pdu, dh_dcm_assoc **out,
				 char *err, size_t errlen)
{
	*out = NULL;
	T_ASC_Association *assoc = NULL;
	OFCondition c = ASC_receiveAssociation(net->net, &assoc, max_pdu, NULL, NULL, net->secure,
					       DUL_NOBLOCK, timeout_s);
	if (c.bad()) {
		int rc = (c == DUL_NOASSOCIATIONREQUEST) ? DH_DCM_TIMEOUT : DH_DCM_ERROR;
		if (rc == DH_DCM_ERROR)
			set_err(err, errlen, "bad association request", c);
		if (assoc) {
			ASC_dropAssociation(assoc);
			ASC_destroyAssociation(&assoc);
		}
		return rc;
	}
	dh_dcm_assoc *a = new dh_dcm_assoc();
	a->assoc = assoc;
	ASC_getAPTitles(assoc->params, a->calling, sizeof(a->calling), a->called, sizeof(a->called),
			NULL, 0);
	copy_str(a->peer, sizeof(a->peer), assoc->params->DULparams.callingPresentationAddress);
	int n = ASC_countPresentationContexts(assoc->params);
	for (int i = 0; i < n; i++) {
		T_ASC_PresentationContext pc;
		if (ASC_getPresentationContext(assoc->params, i, &pc).good())
			a->proposed.push_back(pc);
	}
	*out = a;
	return DH_DCM_OK;
}

extern "C" const char *dh_dcm_assoc_calling_ae(const dh_dcm_assoc *a) { return a->calling; }
extern "C" const char *dh_dcm_assoc_called_ae(const dh_dcm_assoc *a) { return a->called; }
extern "C" const char *dh_dcm_assoc_peer_host(const dh_dcm_assoc *a) { return a->peer; }
extern "C" int dh_dcm_assoc_pc_count(const dh_dcm_assoc *a) { return (int)a->proposed.size(); }

static int role_from_dcmtk(T_ASC_SC_ROLE r)
{
	switch (r) {
	case ASC_SC_ROLE_SCU: return 1;
	case ASC_SC_ROLE_SCP: return 2;
	case ASC_SC_ROLE_SCUSCP: return 3;
	default: return 0;
	}
}

static T_ASC_SC_ROLE role_to_dcmtk(int r)
{
	switch (r) {
	case 1: return ASC_SC_ROLE_SCU;
	case 2: return ASC_SC_ROLE_SCP;
	case 3: return ASC_SC_ROLE_SCUSCP;
	default: return ASC_SC_ROLE_DEFAULT;
	}
}

extern "C" int dh_dcm_assoc_pc_get(const dh_dcm_assoc *a, int i, int *id, const char **abstract_syntax,
				   const char *const **ts, int *n_ts, int *role)
{
	if (i < 0 || i >= (int)a->proposed.size())
		return DH_DCM_ERROR;
	const T_ASC_PresentationContext &pc = a->proposed[(size_t)i];
	/* proposedTransferSyntaxes is an array of fixed char arrays; hand out pointers */
	static thread_local const char *ptrs[DICOM_MAXTRANSFERSYNTAXES];
	for (int k = 0; k < pc.transferSyntaxCount && k < DICOM_MAXTRANSFERSYNTAXES; k++)
		ptrs[k] = pc.proposedTransferSyntaxes[k];
	*id = pc.presentationContextID;
	*abstract_syntax = pc.abstractSyntax;
	*ts = ptrs;
	*n_ts = pc.transferSyntaxCount;
	*role = role_from_dcmtk(pc.proposedRole);
	return DH_DCM_OK;
}

extern "C" int dh_dcm_assoc_pc_accept(dh_dcm_assoc *a, int id, const char *ts, int role,
				      const unsigned char *ext_neg, size_t ext_len)
{
	OFCondition c = ASC_acceptPresentationContext(a->assoc->params, (T_ASC_PresentationContextID)id,
						      ts, role_to_dcmtk(role));
	if (c.bad())
		return DH_DCM_ERROR;
	if (ext_neg && ext_len) {
		const char *abstract = NULL;
		for (const T_ASC_PresentationContext &pc : a->proposed)
			if (pc.presentationContextID == id)
				abstract = pc.abstractSyntax;
		if (!abstract)
			return DH_DCM_ERROR;
		if (!a->accepted_ext)
			a->accepted_ext = new SOPClassExtendedNegotiationSubItemList();
		for (SOPClassExtendedNegotiationSubItem *i : *a->accepted_ext)
			if (i->sopClassUID == abstract)
				return DH_DCM_OK; /* one reply per SOP class */
		SOPClassExtendedNegotiationSubItem *item = new SOPClassExtendedNegotiationSubItem();
		item->sopClassUID = abstract;
		item->serviceClassAppInfoLength = (unsigned short)ext_len;
		item->serviceClassAppInfo = new unsigned char[ext_len];
		memcpy(item->serviceClassAppInfo, ext_neg, ext_len);
		a->accepted_ext->push_back(item);
	}
	return DH_DCM_OK;
}

extern "C" int dh_dcm_assoc_pc_refuse(dh_dcm_assoc *a, int id)
{
	OFCondition c = ASC_refusePresentationContext(a->assoc->params, (T_ASC_PresentationContextID)id,
						      ASC_P_USERREJECTION);
	return c.good() ? DH_DCM_OK : DH_DCM_ERROR;
}

extern "C" const unsigned char *dh_dcm_assoc_ext_neg(const dh_dcm_assoc *a, const char *abstract_syntax,
						     size_t *len)
{
	SOPClassExtendedNegotiationSubItemList *list = NULL;
	ASC_getRequestedExtNegList(a->assoc->params, &list);
	if (!list)
		return NULL;
	for (SOPClassExtendedNegotiationSubItem *i : *list) {
		if (i->sopClassUID == abstract_syntax && i->serviceClassAppInfoLength > 0) {
			*len = i->serviceClassAppInfoLength;
			return i->serviceClassAppInfo;
		}
	}
	return NULL;
}

extern "C" int dh_dcm_assoc_acknowledge(dh_dcm_assoc *a, char *err, size_t errlen)
{
	if (a->accepted_ext)
		ASC_setAcceptedExtNegList(a->assoc->params, a->accepted_ext);
	OFCondition c = ASC_acknowledgeAssociation(a->assoc);
	if (c.bad()) {
		set_err(err, errlen, "cannot acknowledge association", c);
		return DH_DCM_ERROR;
	}
	return DH_DCM_OK;
}

extern "C" int dh_dcm_assoc_reject(dh_dcm_assoc *a, int result, int source, int reason)
{
	T_ASC_RejectParameters rej;
	rej.result = result == 1 ? ASC_RESULT_REJECTEDPERMANENT : ASC_RESULT_REJECTEDTRANSIENT;
	switch (source) {
	case 2: rej.source = ASC_SOURCE_SERVICEPROVIDER_ACSE_RELATED; break;
	case 3: rej.source = ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED; break;
	default: rej.source = ASC_SOURCE_SERVICEUSER; break;
	}
	rej.reason = (T_ASC_RejectParametersReason)((source << 8) | reason);
	OFCondition c = ASC_rejectAssociation(a->assoc, &rej);
	return c.good() ? DH_DCM_OK : DH_DCM_ERROR;
}

/* ---- requesting an association ----------------------------------------- */

/* Opens an association, over TLS when tls is non-NULL (dh_dcm_assoc_request[_tls]). */
static int assoc_request(dh_dcm_assoc **out, const char *calling_ae, const char *called_ae, const char *host,
			 int port, int max_pdu, int timeout_s, const dh_dcm_pc_req *pcs, int n_pcs,
			 dh_dcm_tls *tls, char *err, size_t errlen)
{
	*out = NULL;
	dh_dcm_assoc *a = new dh_dcm_assoc();
	T_ASC_Parameters *params = NULL;
	char addr[300];
	int rc = DH_DCM_ERROR;
	OFCondition c = ASC_initializeNetwork(NET_REQUESTOR, 0, timeout_s, &a->own_net);
	if (c.bad()) {
		set_err(err, errlen, "cannot initialise network", c);
		goto done;
	}
	/* the layer stays the tls object's (not owned): many associations share it */
	if (tls && (c = ASC_setTransportLayer(a->own_net, tls->layer, 0)).bad()) {
		set_err(err, errlen, "cannot set up TLS", c);
		goto done;
	}
	c = ASC_createAssociationParameters(&params, max_pdu);
	if (c.bad()) {
		set_err(err, errlen, "cannot create association", c);
		goto done;
	}
	ASC_setAPTitles(params, calling_ae, called_ae, NULL);
	if (tls)
		ASC_setTransportLayerType(params, OFTrue);
	snprintf(addr, sizeof(addr), "%s:%d", host, port);
	ASC_setPresentationAddresses(params, "localhost", addr);
	for (int i = 0; i < n_pcs; i++) {
		std::vector<const char *> ts(pcs[i].ts, pcs[i].ts + pcs[i].n_ts);
		c = ASC_addPresentationContext(params, (T_ASC_PresentationContextID)(2 * i + 1),
					       pcs[i].abstract_syntax, ts.data(), pcs[i].n_ts,
					       role_to_dcmtk(pcs[i].role));
		if (c.bad()) {
			set_err(err, errlen, "cannot add presentation context", c);
			ASC_destroyAssociationParameters(&params);
			goto done;
		}
	}
	request_timeout_s = timeout_s; /* bounds a TLS handshake (BoundedTLSConnection) */
	c = ASC_requestAssociation(a->own_net, params, &a->assoc, NULL, NULL, DUL_BLOCK, timeout_s);
	if (c.bad()) {
		if (c == DUL_ASSOCIATIONREJECTED) {
			T_ASC_RejectParameters rej;
			ASC_getRejectParameters(params, &rej);
			OFString s;
			if (err && errlen)
				snprintf(err, errlen, "association rejected: %s",
					 ASC_printRejectParameters(s, &rej).c_str());
			rc = DH_DCM_REJECTED;
		} else {
			set_err(err, errlen, "association request failed", c);
		}
		if (!a->assoc)
			ASC_destroyAssociationParameters(&params);
		goto done;
	}
	if (ASC_countAcceptedPresentationContexts(a->assoc->params) == 0) {
		set_err_text(err, errlen, "association accepted with no presentation context");
		ASC_abortAssociation(a->assoc);
		goto done;
	}
	copy_str(a->calling, sizeof(a->calling), calling_ae);
	copy_str(a->called, sizeof(a->called), called_ae);
	copy_str(a->peer, sizeof(a->peer), host);
	*out = a;
	a = NULL;
	rc = DH_DCM_OK;
done:
	assoc_destroy(a);
	return rc;
}

extern "C" int dh_dcm_assoc_request(dh_dcm_assoc **out, const char *calling_ae, const char *called_ae,
				    const char *host, int port, int max_pdu, int timeout_s,
				    const dh_dcm_pc_req *pcs, int n_pcs, char *err, size_t errlen)
{
	return assoc_request(out, calling_ae, called_ae, host, port, max_pdu, timeout_s, pcs, n_pcs, NULL, err,
			     errlen);
}

extern "C" int dh_dcm_assoc_request_tls(dh_dcm_assoc **out, const char *calling_ae, const char *called_ae,
					const char *host, int port, int max_pdu, int timeout_s,
					const dh_dcm_pc_req *pcs, int n_pcs, dh_dcm_tls *tls, char *err,
					size_t errlen)
{
	return assoc_request(out, calling_ae, called_ae, host, port, max_pdu, timeout_s, pcs, n_pcs, tls, err,
			     errlen);
}

extern "C" int dh_dcm_assoc_find_pc(const dh_dcm_assoc *a, const char *abstract_syntax, const char *ts,
				    int *id, const char **accepted_ts)
{
	T_ASC_PresentationContextID pid = ts
		? ASC_findAcceptedPresentationContextID(a->assoc, abstract_syntax, ts)
		: ASC_findAcceptedPresentationContextID(a->assoc, abstract_syntax);
	if (pid == 0)
		return DH_DCM_ABSENT;
	if (ts) {
		/* the ts-aware lookup falls back to any TS; insist on the one asked for */
		const char *acc = dh_dcm_assoc_pc_ts(a, pid);
		if (!acc || strcmp(acc, ts) != 0)
			return DH_DCM_ABSENT;
	}
	*id = pid;
	if (accepted_ts)
		*accepted_ts = dh_dcm_assoc_pc_ts(a, pid);
	return DH_DCM_OK;
}

extern "C" const char *dh_dcm_assoc_pc_ts(const dh_dcm_assoc *a, int id)
{
	/* accepted contexts live in the DUL parameter list; walk it directly so
	 * the returned pointer stays valid while the association does */
	LST_HEAD **l = &a->assoc->params->DULparams.acceptedPresentationContext;
	if (!*l)
		return NULL;
	DUL_PRESENTATIONCONTEXT *pc = (DUL_PRESENTATIONCONTEXT *)LST_Head(l);
	if (pc)
		(void)LST_Position(l, (LST_NODE *)pc);
	while (pc) {
		if (pc->presentationContextID == id && pc->result == ASC_P_ACCEPTANCE)
			return pc->acceptedTransferSyntax;
		pc = (DUL_PRESENTATIONCONTEXT *)LST_Next(l);
	}
	return NULL;
}

extern "C" int dh_dcm_assoc_pc_result(const dh_dcm_assoc *a, int id)
{
	LST_HEAD **l = &a->assoc->params->DULparams.acceptedPresentationContext;
	if (!*l)
		return -1;
	DUL_PRESENTATIONCONTEXT *pc = (DUL_PRESENTATIONCONTEXT *)LST_Head(l);
	if (pc)
		(void)LST_Position(l, (LST_NODE *)pc);
	for (; pc; pc = (DUL_PRESENTATIONCONTEXT *)LST_Next(l))
		if (pc->presentationContextID == id)
			return pc->result;
	return -1;
}

extern "C" int dh_dcm_assoc_release(dh_dcm_assoc *a)
{
	return ASC_releaseAssociation(a->assoc).good() ? DH_DCM_OK : DH_DCM_ERROR;
}

extern "C" void dh_dcm_assoc_abort(dh_dcm_assoc *a)
{
	if (a && a->assoc)
		ASC_abortAssociation(a->assoc);
}

extern "C" void dh_dcm_assoc_free(dh_dcm_assoc *a)
{
	assoc_destroy(a);
}

/* ---- DICOM over TLS ------------------------------------------------------ */

/* The reason OpenSSL recorded last (its queue is per thread), or what. */
static void set_err_ssl(char *err, size_t len, const char *what)
{
	char reason[256] = "";
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	if (err && len)
		snprintf(err, len, "%s%s%s", what, *reason ? ": " : "", reason);
}

/* Names a file that cannot be read with the system's reason (before OpenSSL's vaguer one). */
static int unreadable(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (f) {
		fclose(f);
		return 0;
	}
	if (err && errlen)
		snprintf(err, errlen, "%s '%s' cannot be read: %s", what, path, strerror(errno));
	return 1;
}

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

extern "C" int dh_dcm_tls_new(dh_dcm_tls **out, int server, const dh_dcm_tls_opts *o, char *err, size_t errlen)
{
	*out = NULL;
	dh_dcm_tls *t = new dh_dcm_tls();
	const char *cert = nonempty(o->certificate), *key = nonempty(o->private_key);
	const char *ca_file = nonempty(o->ca_file), *ca_dir = nonempty(o->ca_dir);
	const char *crl_file = nonempty(o->crl_file);
	int verify = server ? o->verify : DH_TLS_VERIFY_REQUIRE;
	DcmTLSSecurityProfile profile = o->profile == DH_TLS_PROFILE_BCP195 ? TSP_Profile_BCP195
				      : o->profile == DH_TLS_PROFILE_BCP195_EXT ? TSP_Profile_BCP195_Extended
				      : TSP_Profile_BCP195_ND;
	char what[1200];
	int rc = DH_DCM_ERROR;
	SSL_CTX *ctx;

	ERR_clear_error();
	t->layer = new BoundedTLSLayer(server ? NET_ACCEPTOR : NET_REQUESTOR);
	t->layer->server = server != 0;
	if (!*t->layer) {
		set_err_ssl(err, errlen, "cannot create a TLS context");
		goto done;
	}
	ctx = t->layer->getNativeHandle();
	if (!cert || !key) {
		set_err_text(err, errlen, "TLS needs a certificate and a private key (tls.certificate, tls.private_key)");
		goto done;
	}
	if (unreadable("certificate", cert, err, errlen) || unreadable("private key", key, err, errlen) ||
	    (ca_file && unreadable("CA file", ca_file, err, errlen)) ||
	    (crl_file && unreadable("CRL file", crl_file, err, errlen)))
		goto done;
	/* an encrypted key then fails to load instead of OpenSSL prompting on a terminal */
	t->layer->setPrivateKeyPasswd("");
	/* the chain variant: a certificate file may carry its intermediate CAs */
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(what, sizeof(what), "certificate '%s' is not a usable PEM certificate", cert);
		set_err_ssl(err, errlen, what);
		goto done;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
			snprintf(what, sizeof(what), "private key '%s' does not belong to certificate '%s'", key, cert);
		else
			snprintf(what, sizeof(what), "private key '%s' cannot be loaded (PEM, not encrypted)", key);
		set_err_ssl(err, errlen, what);
		goto done;
	}
	if (!t->layer->checkPrivateKeyMatchesCertificate()) {
		if (err && errlen)
			snprintf(err, errlen, "private key '%s' does not belong to certificate '%s'", key, cert);
		ERR_clear_error();
		goto done;
	}
	if (ca_file && t->layer->addTrustedCertificateFile(ca_file, DCF_Filetype_PEM).bad()) {
		snprintf(what, sizeof(what), "CA file '%s' holds no usable PEM certificate", ca_file);
		set_err_ssl(err, errlen, what);
		goto done;
	}
	if (ca_dir && t->layer->addTrustedCertificateDir(ca_dir, DCF_Filetype_PEM).bad()) {
		snprintf(what, sizeof(what), "CA directory '%s' cannot be used", ca_dir);
		set_err_ssl(err, errlen, what);
		goto done;
	}
	if (crl_file && (t->layer->addCertificateRevocationList(crl_file, DCF_Filetype_PEM).bad() ||
			 t->layer->setCRLverification(TCR_checkLeafCRL).bad())) {
		snprintf(what, sizeof(what), "CRL file '%s' cannot be used", crl_file);
		set_err_ssl(err, errlen, what);
		goto done;
	}
	if (verify != DH_TLS_VERIFY_IGNORE && !ca_file && !ca_dir) {
		set_err_text(err, errlen, "peers' certificates must be verified but no trusted CA is configured "
					  "(tls.ca_file or tls.ca_dir)");
		goto done;
	}
	t->layer->setCertificateVerification(verify == DH_TLS_VERIFY_IGNORE  ? DCV_ignoreCertificate
					     : verify == DH_TLS_VERIFY_CHECK ? DCV_checkCertificate
									     : DCV_requireCertificate);
	if (t->layer->setTLSProfile(profile).bad() || t->layer->activateCipherSuites().bad()) {
		set_err_ssl(err, errlen, "cannot activate the TLS profile's cipher suites");
		goto done;
	}
	*out = t;
	t = NULL;
	rc = DH_DCM_OK;
done:
	dh_dcm_tls_free(t);
	return rc;
}

extern "C" void dh_dcm_tls_free(dh_dcm_tls *tls)
{
	if (!tls)
		return;
	delete tls->layer;
	delete tls;
}

extern "C" int dh_dcm_net_listen_tls(dh_dcm_net **out, int port, int acse_timeout, dh_dcm_tls *tls, char *err,
				     size_t errlen)
{
	dh_dcm_net *n = NULL;
	if (dh_dcm_net_listen(&n, port, acse_timeout, err, errlen) != DH_DCM_OK)
		return DH_DCM_ERROR;
	OFCondition c = ASC_setTransportLayer(n->net, tls->layer, 0);
	if (c.bad()) {
		set_err(err, errlen, "cannot set up TLS", c);
		dh_dcm_net_free(n);
		return DH_DCM_ERROR;
	}
	n->secure = OFTrue;
	tls->layer->handshake_timeout = acse_timeout; /* set before any thread accepts */
	*out = n;
	return DH_DCM_OK;
}

extern "C" int dh_dcm_assoc_tls_peer(const dh_dcm_assoc *a, char *subject, size_t len)
{
	if (subject && len)
		subject[0] = '\0';
	if (!a->assoc || !a->assoc->params || !a->assoc->params->DULparams.useSecureLayer)
		return 0;
	unsigned long n = ASC_getPeerCertificateLength(a->assoc);
	if (subject && len && n > 0) {
		std::vector<unsigned char> der(n);
		if (ASC_getPeerCertificate(a->assoc, der.data(), n) == n) {
			const unsigned char *p = der.data();
			X509 *x = d2i_X509(NULL, &p, (long)n);
			if (x) {
				X509_NAME_oneline(X509_get_subject_name(x), subject, (int)len);
				X509_free(x);
			}
		}
		ERR_clear_error();
	}
	return 1;
}

/* ---- DIMSE ------------------------------------------------------------- */

static int map_receive_cond(const OFCondition &c, char *err, size_t errlen)
{
	if (c == DIMSE_NODATAAVAILABLE)
		return DH_DCM_TIMEOUT;
	if (c == DUL_PEERABORTEDASSOCIATION || c == DUL_NETWORKCLOSED)
		return DH_DCM_ABORTED;
	set_err(err, errlen, "receive failed", c);
	return DH_DCM_ERROR;
}

extern "C" int dh_dcm_receive_command(dh_dcm_assoc *a, int timeout_s, dh_dcm_cmd *cmd, char *err,
				      size_t errlen)
{
	T_ASC_PresentationContextID pcid = 0;
	DcmDataset *detail = NULL;
	memset(cmd, 0, sizeof(*cmd));
	memset(&a->last, 0, sizeof(a->last));
	OFCondition c = DIMSE_receiveCommand(a->assoc, DIMSE_NONBLOCKING, timeout_s, &pcid, &a->last,
					     &detail);
	delete detail;
	if (c == DUL_PEERREQUESTEDRELEASE) {
		ASC_acknowledgeRelease(a->assoc);
		return DH_DCM_RELEASED;
	}
	if (c.bad())
		return map_receive_cond(c, err, errlen);
	cmd->pc_id = pcid;
	a->last_pcid = pcid;
	const T_DIMSE_Message &m = a->last;
	switch (m.CommandField) {
	case DIMSE_C_ECHO_RQ:
		cmd->type = DH_DIMSE_C_ECHO_RQ;
		cmd->msg_id = m.msg.CEchoRQ.MessageID;
		copy_str(cmd->sop_class, sizeof(cmd->sop_class), m.msg.CEchoRQ.AffectedSOPClassUID);
		cmd->has_dataset = m.msg.CEchoRQ.DataSetType != DIMSE_DATASET_NULL;
		break;
	case DIMSE_C_STORE_RQ:
		cmd->type = DH_DIMSE_C_STORE_RQ;
		cmd->msg_id = m.msg.CStoreRQ.MessageID;
		copy_str(cmd->sop_class, sizeof(cmd->sop_class), m.msg.CStoreRQ.AffectedSOPClassUID);
		copy_str(cmd->sop_instance, sizeof(cmd->sop_instance), m.msg.CStoreRQ.AffectedSOPInstanceUID);
		cmd->priority = m.msg.CStoreRQ.Priority;
		if (m.msg.CStoreRQ.opts & O_STORE_MOVEORIGINATORAETITLE)
			copy_str(cmd->move_orig_ae, sizeof(cmd->move_orig_ae),
				 m.msg.CStoreRQ.MoveOriginatorApplicationEntityTitle);
		if (m.msg.CStoreRQ.opts & O_STORE_MOVEORIGINATORID)
			cmd->move_orig_msg_id = m.msg.CStoreRQ.MoveOriginatorID;
		cmd->has_dataset = m.msg.CStoreRQ.DataSetType != DIMSE_DATASET_NULL;
		break;
	case DIMSE_C_FIND_RQ:
		cmd->type = DH_DIMSE_C_FIND_RQ;
		cmd->msg_id = m.msg.CFindRQ.MessageID;
		copy_str(cmd->sop_class, sizeof(cmd->sop_class), m.msg.CFindRQ.AffectedSOPClassUID);
		cmd->priority = m.msg.CFindRQ.Priority;
		cmd->has_dataset = m.msg.CFindRQ.DataSetType != DIMSE_DATASET_NULL;
		break;
	case DIMSE_C_MOVE_RQ:
		cmd->type = DH_DIMSE_C_MOVE_RQ;
		cmd->msg_id = m.msg.CMoveRQ.MessageID;
		copy_str(cmd->sop_class, sizeof(cmd->sop_class), m.msg.CMoveRQ.AffectedSOPClassUID);
		copy_str(cmd->move_dest, sizeof(cmd->move_dest), m.msg.CMoveRQ.MoveDestination);
		cmd->priority = m.msg.CMoveRQ.Priority;
		cmd->has_dataset = m.msg.CMoveRQ.DataSetType != DIMSE_DATASET_NULL;
		break;
	case DIMSE_C_GET_RQ:
		cmd->type = DH_DIMSE_C_GET_RQ;
		cmd->msg_id = m.msg.CGetRQ.MessageID;
		copy_str(cmd->sop_class, sizeof(cmd->sop_class), m.msg.CGetRQ.AffectedSOPClassUID);
		cmd->has_dataset = m.msg.CGetRQ.DataSetType != DIMSE_DATASET_NULL;
		break;
	case DIMSE_C_CANCEL_RQ:
		cmd->type = DH_DIMSE_C_CANCEL_RQ;
		cmd->msg_id = m.msg.CCancelRQ.MessageIDBeingRespondedTo;
		cmd->has_dataset = m.msg.CCancelRQ.DataSetType != DIMSE_DATASET_NULL;
		break;
	case DIMSE_N_ACTION_RQ:
		cmd->type = DH_DIMSE_N_ACTION_RQ;
		cmd->msg_id = m.msg.NActionRQ.MessageID;
		copy_str(cmd->sop_class, sizeof(cmd->sop_class), m.msg.NActionRQ.RequestedSOPClassUID);
		copy_str(cmd->sop_instance, sizeof(cmd->sop_instance), m.msg.NActionRQ.RequestedSOPInstanceUID);
		cmd->type_id = m.msg.NActionRQ.ActionTypeID;
		cmd->has_dataset = m.msg.NActionRQ.DataSetType != DIMSE_DATASET_NULL;
		break;
	case DIMSE_N_EVENT_REPORT_RQ:
		cmd->type = DH_DIMSE_N_EVENT_REPORT_RQ;
		cmd->msg_id = m.msg.NEventReportRQ.MessageID;
		copy_str(cmd->sop_class, sizeof(cmd->sop_class), m.msg.NEventReportRQ.AffectedSOPClassUID);
		copy_str(cmd->sop_instance, sizeof(cmd->sop_instance),
			 m.msg.NEventReportRQ.AffectedSOPInstanceUID);
		cmd->type_id = m.msg.NEventReportRQ.EventTypeID;
		cmd->has_dataset = m.msg.NEventReportRQ.DataSetType != DIMSE_DATASET_NULL;
		break;
	case DIMSE_N_CREATE_RQ:
		cmd->type = DH_DIMSE_N_CREATE_RQ;
		cmd->msg_id = m.msg.NCreateRQ.MessageID;
		copy_str(cmd->sop_class, sizeof(cmd->sop_class), m.msg.NCreateRQ.AffectedSOPClassUID);
		copy_str(cmd->sop_instance, sizeof(cmd->sop_instance), m.msg.NCreateRQ.AffectedSOPInstanceUID);
		cmd->has_dataset = m.msg.NCreateRQ.DataSetType != DIMSE_DATASET_NULL;
		break;
	case DIMSE_N_SET_RQ:
		cmd->type = DH_DIMSE_N_SET_RQ;
		cmd->msg_id = m.msg.NSetRQ.MessageID;
		copy_str(cmd->sop_class, sizeof(cmd->sop_class), m.msg.NSetRQ.RequestedSOPClassUID);
		copy_str(cmd->sop_instance, sizeof(cmd->sop_instance), m.msg.NSetRQ.RequestedSOPInstanceUID);
		cmd->has_dataset = m.msg.NSetRQ.DataSetType != DIMSE_DATASET_NULL;
		break;
	default:
		cmd->type = DH_DIMSE_OTHER;
		break;
	}
	return DH_DCM_OK;
}

extern "C" int dh_dcm_receive_store_file(dh_dcm_assoc *a, const dh_dcm_cmd *cmd, const char *path,
					 int timeout_s, char *err, size_t errlen)
{
	DcmOutputFileStream *fs = NULL;
	T_ASC_PresentationContextID pcid = 0;
	OFCondition c = DIMSE_createFilestream(path, &a->last.msg.CStoreRQ, a->assoc,
					       (T_ASC_PresentationContextID)cmd->pc_id, OFTrue, &fs);
	if (c.bad()) {
		int e = errno;
		set_err(err, errlen, "cannot create file", c);
		dh_dcm_receive_discard(a, timeout_s);
		return (e == ENOSPC || e == EDQUOT) ? DH_DCM_NOSPACE : DH_DCM_ERROR;
	}
	c = DIMSE_receiveDataSetInFile(a->assoc, DIMSE_NONBLOCKING, timeout_s, &pcid, fs, NULL, NULL);
	int write_errno = errno;
	OFBool ok = fs->good();
	delete fs; /* closes the file */
	if (c.bad() || !ok) {
		int rc;
		if (c == DIMSE_OUTOFRESOURCES || c.code() == DIMSEC_OUTOFRESOURCES) {
			rc = (write_errno == ENOSPC || write_errno == EDQUOT) ? DH_DCM_NOSPACE : DH_DCM_ERROR;
			set_err(err, errlen, "cannot write data set", c);
		} else {
			rc = map_receive_cond(c, err, errlen);
		}
		unlink(path);
		return rc;
	}
	return DH_DCM_OK;
}

/*
 * The file end of a C-STORE receive that hashes what it writes: MD5 and
 * XXH3-128 of the whole file and XXH3-128 of the data set (every byte that
 * comes after the File Meta Information, i.e. every byte received). Writes
 * go straight to the descriptor: the PDVs arrive in blocks of the peer's
 * PDU size, larger than a stdio buffer would gather.
 */
class HashingConsumer : public DcmConsumer {
public:
	HashingConsumer(int fd, dh_md5 *md5, XXH3_state_t *file, XXH3_state_t *dataset)
		: fd_(fd), md5_(md5), file_(file), dataset_(dataset), status_(EC_Normal), errno_(0), size_(0)
	{
	}
	OFBool good() const override { return status_.good(); }
	OFCondition status() const override { return status_; }
	OFBool isFlushed() const override { return OFTrue; }
	offile_off_t avail() const override { return 0x7fffffff; }
	offile_off_t write(const void *buf, offile_off_t buflen) override
	{
		if (status_.bad())
			return 0;
		const char *p = static_cast<const char *>(buf);
		offile_off_t left = buflen;
		while (left > 0) {
			ssize_t n = ::write(fd_, p, (size_t)left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				errno_ = n < 0 ? errno : EIO;
				status_ = EC_InvalidStream;
				return buflen - left;
			}
			p += n;
			left -= n;
		}
		dh_md5_update(md5_, buf, (size_t)buflen);
		XXH3_128bits_update(file_, buf, (size_t)buflen);
		XXH3_128bits_update(dataset_, buf, (size_t)buflen);
		size_ += buflen;
		return buflen;
	}
	void flush() override {}
	int write_errno() const { return errno_; }
	long long size() const { return size_; }

private:
	int fd_;
	dh_md5 *md5_;
	XXH3_state_t *file_, *dataset_;
	OFCondition status_;
	int errno_;
	long long size_;
};

class HashingStream : public DcmOutputStream {
public:
	HashingStream(int fd, dh_md5 *md5, XXH3_state_t *file, XXH3_state_t *dataset)
		: DcmOutputStream(&consumer_), consumer_(fd, md5, file, dataset)
	{
	}
	const HashingConsumer &consumer() const { return consumer_; }

private:
	HashingConsumer consumer_;
};

static void xxh_hex(XXH3_state_t *x, char out[33])
{
	XXH128_hash_t d = XXH3_128bits_digest(x);
	dh_xxh128_hex(d.high64, d.low64, out);
}

extern "C" int dh_dcm_receive_store_hashed(dh_dcm_assoc *a, const dh_dcm_cmd *cmd, const char *path,
					   int timeout_s, dh_dcm_received *out, char *err, size_t errlen)
{
	int rc = DH_DCM_ERROR, fd = -1, e = 0, created = 0;
	dh_md5 *md5 = NULL;
	XXH3_state_t *fx = XXH3_createState(), *dx = XXH3_createState();
	HashingStream *hs = NULL;
	DcmOutputFileStream *fs = NULL;
	T_ASC_PresentationContextID pcid = 0;
	char meta[4096];
	long long meta_len = 0;
	OFCondition c;

	memset(out, 0, sizeof(*out));
	if (!fx || !dx || dh_md5_new(&md5) < 0 || XXH3_128bits_reset(fx) != XXH_OK ||
	    XXH3_128bits_reset(dx) != XXH_OK) {
		set_err_text(err, errlen, "out of memory");
		dh_dcm_receive_discard(a, timeout_s);
		goto done;
	}
	/* DCMTK writes the File Meta Information from the command, as dh_dcm_receive_store_file does */
	c = DIMSE_createFilestream(path, &a->last.msg.CStoreRQ, a->assoc, (T_ASC_PresentationContextID)cmd->pc_id,
				   OFTrue, &fs);
	if (c.bad()) {
		e = errno;
		set_err(err, errlen, "cannot create file", c);
		dh_dcm_receive_discard(a, timeout_s);
		rc = (e == ENOSPC || e == EDQUOT) ? DH_DCM_NOSPACE : DH_DCM_ERROR;
		goto done;
	}
	created = 1;
	{
		OFBool ok = fs->good();
		delete fs; /* closes the file: the meta is in it */
		fs = NULL;
		if (ok)
			fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
		if (!ok || fd < 0) {
			e = errno;
			set_err_text(err, errlen, "cannot write file meta information");
			dh_dcm_receive_discard(a, timeout_s);
			rc = (e == ENOSPC || e == EDQUOT) ? DH_DCM_NOSPACE : DH_DCM_ERROR;
			goto done;
		}
	}
	/* the meta is a few hundred bytes: hashed from the file, the data set as it arrives */
	for (;;) {
		ssize_t n = pread(fd, meta, sizeof(meta), (off_t)meta_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_err_text(err, errlen, "cannot read back file meta information");
			dh_dcm_receive_discard(a, timeout_s);
			goto done;
		}
		if (n == 0)
			break;
		dh_md5_update(md5, meta, (size_t)n);
		XXH3_128bits_update(fx, meta, (size_t)n);
		meta_len += n;
	}
	hs = new HashingStream(fd, md5, fx, dx);
	c = DIMSE_receiveDataSetInFile(a->assoc, DIMSE_NONBLOCKING, timeout_s, &pcid, hs, NULL, NULL);
	if (c.bad() || !hs->good()) {
		int write_errno = hs->consumer().write_errno();
		if (c == DIMSE_OUTOFRESOURCES || c.code() == DIMSEC_OUTOFRESOURCES || !hs->good()) {
			rc = (write_errno == ENOSPC || write_errno == EDQUOT) ? DH_DCM_NOSPACE : DH_DCM_ERROR;
			set_err(err, errlen, "cannot write data set", c.bad() ? c : EC_InvalidStream);
		} else {
			rc = map_receive_cond(c, err, errlen);
		}
		goto done;
	}
	/* close() may report a delayed write error */
	e = close(fd);
	fd = -1;
	if (e != 0) {
		e = errno;
		set_err_text(err, errlen, "cannot write data set");
		rc = (e == ENOSPC || e == EDQUOT) ? DH_DCM_NOSPACE : DH_DCM_ERROR;
		goto done;
	}
	if (dh_md5_final(md5, out->md5) < 0) {
		set_err_text(err, errlen, "cannot compute MD5");
		goto done;
	}
	xxh_hex(fx, out->file_digest);
	xxh_hex(dx, out->dataset_digest);
	out->size = meta_len + hs->consumer().size();
	rc = DH_DCM_OK;
done:
	delete hs;
	if (fd >= 0)
		close(fd);
	if (rc != DH_DCM_OK && created)
		unlink(path);
	dh_md5_free(md5);
	if (fx)
		XXH3_freeState(fx);
	if (dx)
		XXH3_freeState(dx);
	return rc;
}

extern "C" int dh_dcm_receive_discard(dh_dcm_assoc *a, int timeout_s)
{
	DIC_UL bytes = 0, pdvs = 0;
	OFCondition c = DIMSE_ignoreDataSet(a->assoc, DIMSE_NONBLOCKING, timeout_s, &bytes, &pdvs);
	return c.good() ? DH_DCM_OK : DH_DCM_ERROR;
}

extern "C" int dh_dcm_receive_dataset(dh_dcm_assoc *a, int timeout_s, dh_dcm_ds **out, char *err,
				      size_t errlen)
{
	DcmDataset *ds = NULL;
	T_ASC_PresentationContextID pcid = 0;
	OFCondition c = DIMSE_receiveDataSetInMemory(a->assoc, DIMSE_NONBLOCKING, timeout_s, &pcid, &ds,
						     NULL, NULL);
	if (c.bad())
		return map_receive_cond(c, err, errlen);
	dh_dcm_ds *d = new dh_dcm_ds();
	/* DcmFileFormat owns a dataset; replace it by the received one */
	d->ff.getDataset()->clear();
	for (unsigned long i = 0; i < ds->card(); i++)
		d->ff.getDataset()->insert(OFstatic_cast(DcmElement *, ds->getElement(i)->clone()));
	delete ds;
	*out = d;
	return DH_DCM_OK;
}

extern "C" int dh_dcm_send_response(dh_dcm_assoc *a, const dh_dcm_cmd *cmd, unsigned int status,
				    const dh_dcm_ds *ds, const char *error_comment, const int counts[4])
{
	T_DIMSE_Message rsp;
	memset(&rsp, 0, sizeof(rsp));
	DcmDataset *payload = ds ? const_cast<dh_dcm_ds *>(ds)->ff.getDataset() : NULL;
	T_DIMSE_DataSetType dst = payload ? DIMSE_DATASET_PRESENT : DIMSE_DATASET_NULL;
	DcmDataset *detail = NULL;
	if (error_comment && *error_comment) {
		detail = new DcmDataset();
		std::string ec(error_comment, strnlen(error_comment, 64));
		detail->putAndInsertString(DCM_ErrorComment, ec.c_str());
	}
	switch (cmd->type) {
	case DH_DIMSE_C_ECHO_RQ:
		rsp.CommandField = DIMSE_C_ECHO_RSP;
		rsp.msg.CEchoRSP.MessageIDBeingRespondedTo = cmd->msg_id;
		copy_str(rsp.msg.CEchoRSP.AffectedSOPClassUID, sizeof(DIC_UI), cmd->sop_class);
		rsp.msg.CEchoRSP.DimseStatus = (DIC_US)status;
		rsp.msg.CEchoRSP.DataSetType = DIMSE_DATASET_NULL;
		rsp.msg.CEchoRSP.opts = O_ECHO_AFFECTEDSOPCLASSUID;
		break;
	case DH_DIMSE_C_STORE_RQ:
		rsp.CommandField = DIMSE_C_STORE_RSP;
		rsp.msg.CStoreRSP.MessageIDBeingRespondedTo = cmd->msg_id;
		copy_str(rsp.msg.CStoreRSP.AffectedSOPClassUID, sizeof(DIC_UI), cmd->sop_class);
		copy_str(rsp.msg.CStoreRSP.AffectedSOPInstanceUID, sizeof(DIC_UI), cmd->sop_instance);
		rsp.msg.CStoreRSP.DimseStatus = (DIC_US)status;
		rsp.msg.CStoreRSP.DataSetType = DIMSE_DATASET_NULL;
		rsp.msg.CStoreRSP.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;
		payload = NULL;
		break;
	case DH_DIMSE_C_FIND_RQ:
		rsp.CommandField = DIMSE_C_FIND_RSP;
		rsp.msg.CFindRSP.MessageIDBeingRespondedTo = cmd->msg_id;
		copy_str(rsp.msg.CFindRSP.AffectedSOPClassUID, sizeof(DIC_UI), cmd->sop_class);
		rsp.msg.CFindRSP.DimseStatus = (DIC_US)status;
		rsp.msg.CFindRSP.DataSetType = dst;
		rsp.msg.CFindRSP.opts = O_FIND_AFFECTEDSOPCLASSUID;
		break;
	case DH_DIMSE_C_MOVE_RQ:
		rsp.CommandField = DIMSE_C_MOVE_RSP;
		rsp.msg.CMoveRSP.MessageIDBeingRespondedTo = cmd->msg_id;
		copy_str(rsp.msg.CMoveRSP.AffectedSOPClassUID, sizeof(DIC_UI), cmd->sop_class);
		rsp.msg.CMoveRSP.DimseStatus = (DIC_US)status;
		rsp.msg.CMoveRSP.DataSetType = dst;
		rsp.msg.CMoveRSP.opts = O_MOVE_AFFECTEDSOPCLASSUID;
		if (counts) {
			rsp.msg.CMoveRSP.NumberOfRemainingSubOperations = (DIC_US)counts[0];
			rsp.msg.CMoveRSP.NumberOfCompletedSubOperations = (DIC_US)counts[1];
			rsp.msg.CMoveRSP.NumberOfFailedSubOperations = (DIC_US)counts[2];
			rsp.msg.CMoveRSP.NumberOfWarningSubOperations = (DIC_US)counts[3];
			rsp.msg.CMoveRSP.opts |= O_MOVE_NUMBEROFREMAININGSUBOPERATIONS |
				O_MOVE_NUMBEROFCOMPLETEDSUBOPERATIONS | O_MOVE_NUMBEROFFAILEDSUBOPERATIONS |
				O_MOVE_NUMBEROFWARNINGSUBOPERATIONS;
		}
		break;
	case DH_DIMSE_N_ACTION_RQ:
		rsp.CommandField = DIMSE_N_ACTION_RSP;
		rsp.msg.NActionRSP.MessageIDBeingRespondedTo = cmd->msg_id;
		copy_str(rsp.msg.NActionRSP.AffectedSOPClassUID, sizeof(DIC_UI), cmd->sop_class);
		copy_str(rsp.msg.NActionRSP.AffectedSOPInstanceUID, sizeof(DIC_UI), cmd->sop_instance);
		rsp.msg.NActionRSP.DimseStatus = (DIC_US)status;
		rsp.msg.NActionRSP.DataSetType = dst;
		rsp.msg.NActionRSP.ActionTypeID = (DIC_US)cmd->type_id;
		rsp.msg.NActionRSP.opts = O_NACTION_AFFECTEDSOPCLASSUID | O_NACTION_AFFECTEDSOPINSTANCEUID |
			O_NACTION_ACTIONTYPEID;
		break;
	case DH_DIMSE_N_EVENT_REPORT_RQ:
		rsp.CommandField = DIMSE_N_EVENT_REPORT_RSP;
		rsp.msg.NEventReportRSP.MessageIDBeingRespondedTo = cmd->msg_id;
		copy_str(rsp.msg.NEventReportRSP.AffectedSOPClassUID, sizeof(DIC_UI), cmd->sop_class);
		copy_str(rsp.msg.NEventReportRSP.AffectedSOPInstanceUID, sizeof(DIC_UI), cmd->sop_instance);
		rsp.msg.NEventReportRSP.DimseStatus = (DIC_US)status;
		rsp.msg.NEventReportRSP.DataSetType = dst;
		rsp.msg.NEventReportRSP.EventTypeID = (DIC_US)cmd->type_id;
		rsp.msg.NEventReportRSP.opts = O_NEVENTREPORT_AFFECTEDSOPCLASSUID |
			O_NEVENTREPORT_AFFECTEDSOPINSTANCEUID | O_NEVENTREPORT_EVENTTYPEID;
		break;
	case DH_DIMSE_N_CREATE_RQ:
		rsp.CommandField = DIMSE_N_CREATE_RSP;
		rsp.msg.NCreateRSP.MessageIDBeingRespondedTo = cmd->msg_id;
		copy_str(rsp.msg.NCreateRSP.AffectedSOPClassUID, sizeof(DIC_UI), cmd->sop_class);
		copy_str(rsp.msg.NCreateRSP.AffectedSOPInstanceUID, sizeof(DIC_UI), cmd->sop_instance);
		rsp.msg.NCreateRSP.DimseStatus = (DIC_US)status;
		rsp.msg.NCreateRSP.DataSetType = dst;
		rsp.msg.NCreateRSP.opts = O_NCREATE_AFFECTEDSOPCLASSUID | O_NCREATE_AFFECTEDSOPINSTANCEUID;
		break;
	case DH_DIMSE_N_SET_RQ:
		rsp.CommandField = DIMSE_N_SET_RSP;
		rsp.msg.NSetRSP.MessageIDBeingRespondedTo = cmd->msg_id;
		copy_str(rsp.msg.NSetRSP.AffectedSOPClassUID, sizeof(DIC_UI), cmd->sop_class);
		copy_str(rsp.msg.NSetRSP.AffectedSOPInstanceUID, sizeof(DIC_UI), cmd->sop_instance);
		rsp.msg.NSetRSP.DimseStatus = (DIC_US)status;
		rsp.msg.NSetRSP.DataSetType = dst;
		rsp.msg.NSetRSP.opts = O_NSET_AFFECTEDSOPCLASSUID | O_NSET_AFFECTEDSOPINSTANCEUID;
		break;
	default:
		delete detail;
		return DH_DCM_ERROR;
	}
	OFCondition c = DIMSE_sendMessageUsingMemoryData(a->assoc, (T_ASC_PresentationContextID)cmd->pc_id,
							 &rsp, detail, payload, NULL, NULL);
	delete detail;
	return c.good() ? DH_DCM_OK : DH_DCM_ERROR;
}

/* Waits for the response to the request just sent and returns its status. */
static int await_response(dh_dcm_assoc *a, int timeout_s, unsigned int *status, DcmDataset **rsp_ds,
			  char *err, size_t errlen)
{
	T_DIMSE_Message rsp;
	T_ASC_PresentationContextID pcid = 0;
	DcmDataset *detail = NULL;
	OFCondition c = DIMSE_receiveCommand(a->assoc, DIMSE_NONBLOCKING, timeout_s, &pcid, &rsp, &detail);
	delete detail;
	if (c.bad())
		return map_receive_cond(c, err, errlen);
	DIC_US st = 0;
	T_DIMSE_DataSetType dst = DIMSE_DATASET_NULL;
	switch (rsp.CommandField) {
	case DIMSE_C_ECHO_RSP: st = rsp.msg.CEchoRSP.DimseStatus; break;
	case DIMSE_C_STORE_RSP: st = rsp.msg.CStoreRSP.DimseStatus; break;
	case DIMSE_N_ACTION_RSP:
		st = rsp.msg.NActionRSP.DimseStatus;
		dst = rsp.msg.NActionRSP.DataSetType;
		break;
	case DIMSE_N_EVENT_REPORT_RSP:
		st = rsp.msg.NEventReportRSP.DimseStatus;
		dst = rsp.msg.NEventReportRSP.DataSetType;
		break;
	case DIMSE_N_CREATE_RSP:
		st = rsp.msg.NCreateRSP.DimseStatus;
		dst = rsp.msg.NCreateRSP.DataSetType;
		copy_str(a->rsp_instance, sizeof(a->rsp_instance),
			 (rsp.msg.NCreateRSP.opts & O_NCREATE_AFFECTEDSOPINSTANCEUID)
				 ? rsp.msg.NCreateRSP.AffectedSOPInstanceUID : "");
		break;
	case DIMSE_N_SET_RSP:
		st = rsp.msg.NSetRSP.DimseStatus;
		dst = rsp.msg.NSetRSP.DataSetType;
		break;
	default:
		set_err_text(err, errlen, "unexpected response command");
		return DH_DCM_ERROR;
	}
	if (dst != DIMSE_DATASET_NULL) {
		DcmDataset *ds = NULL;
		c = DIMSE_receiveDataSetInMemory(a->assoc, DIMSE_NONBLOCKING, timeout_s, &pcid, &ds, NULL, NULL);
		if (c.bad())
			return map_receive_cond(c, err, errlen);
		if (rsp_ds)
			*rsp_ds = ds;
		else
			delete ds;
	}
	*status = st;
	return DH_DCM_OK;
}

extern "C" int dh_dcm_echo(dh_dcm_assoc *a, int timeout_s, unsigned int *status)
{
	DIC_US st = 0;
	DcmDataset *detail = NULL;
	OFCondition c = DIMSE_echoUser(a->assoc, a->assoc->nextMsgID++, DIMSE_NONBLOCKING, timeout_s, &st,
				       &detail);
	delete detail;
	*status = st;
	return c.good() ? DH_DCM_OK : DH_DCM_ERROR;
}

extern "C" int dh_dcm_n_action(dh_dcm_assoc *a, int pc_id, const char *sop_class, const char *sop_instance,
			       int action_type, const dh_dcm_ds *ds, int timeout_s, unsigned int *status,
			       char *err, size_t errlen)
{
	T_DIMSE_Message rq;
	memset(&rq, 0, sizeof(rq));
	rq.CommandField = DIMSE_N_ACTION_RQ;
	rq.msg.NActionRQ.MessageID = a->assoc->nextMsgID++;
	copy_str(rq.msg.NActionRQ.RequestedSOPClassUID, sizeof(DIC_UI), sop_class);
	copy_str(rq.msg.NActionRQ.RequestedSOPInstanceUID, sizeof(DIC_UI), sop_instance);
	rq.msg.NActionRQ.ActionTypeID = (DIC_US)action_type;
	DcmDataset *payload = ds ? const_cast<dh_dcm_ds *>(ds)->ff.getDataset() : NULL;
	rq.msg.NActionRQ.DataSetType = payload ? DIMSE_DATASET_PRESENT : DIMSE_DATASET_NULL;
	OFCondition c = DIMSE_sendMessageUsingMemoryData(a->assoc, (T_ASC_PresentationContextID)pc_id, &rq,
							 NULL, payload, NULL, NULL);
	if (c.bad()) {
		set_err(err, errlen, "cannot send N-ACTION", c);
		return DH_DCM_ERROR;
	}
	return await_response(a, timeout_s, status, NULL, err, errlen);
}

extern "C" int dh_dcm_n_event_report(dh_dcm_assoc *a, int pc_id, const char *sop_class,
				     const char *sop_instance, int event_type, const dh_dcm_ds *ds,
				     int timeout_s, unsigned int *status, char *err, size_t errlen)
{
	T_DIMSE_Message rq;
	memset(&rq, 0, sizeof(rq));
	rq.CommandField = DIMSE_N_EVENT_REPORT_RQ;
	rq.msg.NEventReportRQ.MessageID = a->assoc->nextMsgID++;
	copy_str(rq.msg.NEventReportRQ.AffectedSOPClassUID, sizeof(DIC_UI), sop_class);
	copy_str(rq.msg.NEventReportRQ.AffectedSOPInstanceUID, sizeof(DIC_UI), sop_instance);
	rq.msg.NEventReportRQ.EventTypeID = (DIC_US)event_type;
	DcmDataset *payload = ds ? const_cast<dh_dcm_ds *>(ds)->ff.getDataset() : NULL;
	rq.msg.NEventReportRQ.DataSetType = payload ? DIMSE_DATASET_PRESENT : DIMSE_DATASET_NULL;
	OFCondition c = DIMSE_sendMessageUsingMemoryData(a->assoc, (T_ASC_PresentationContextID)pc_id, &rq,
							 NULL, payload, NULL, NULL);
	if (c.bad()) {
		set_err(err, errlen, "cannot send N-EVENT-REPORT", c);
		return DH_DCM_ERROR;
	}
	return await_response(a, timeout_s, status, NULL, err, errlen);
}

/* Writes one message fragment list of buf as PDVs of at most the peer's PDU size. */
static OFCondition write_pdvs(dh_dcm_assoc *a, int pc_id, int type, const unsigned char *buf, size_t len,
			      OFBool last_of_message)
{
	size_t max = a->assoc->sendPDVLength ? a->assoc->sendPDVLength : 16372;
	size_t off = 0;
	do {
		size_t n = len - off < max ? len - off : max;
		DUL_PDV pdv;
		DUL_PDVLIST list;
		pdv.fragmentLength = (unsigned long)n;
		pdv.presentationContextID = (T_ASC_PresentationContextID)pc_id;
		pdv.pdvType = (DUL_DATAPDV)type;
		pdv.lastPDV = (off + n == len) && last_of_message;
		pdv.data = (void *)(buf + off);
		list.count = 1;
		list.pdv = &pdv;
		OFCondition c = DUL_WritePDVs(&a->assoc->DULassociation, &list);
		if (c.bad())
			return c;
		off += n;
	} while (off < len);
	return EC_Normal;
}

/*
 * C-STORE whose data set is the file's bytes after its meta header, sent
 * unparsed (DIMSE's own file sending parses first, which damaged test data
 * would not survive). An odd byte count is padded with one zero byte, as
 * PDV fragments must be even.
 */
static long dataset_offset_buf(const unsigned char *b, size_t n);

static OFCondition send_raw_store(dh_dcm_assoc *a, int pc_id, const T_DIMSE_C_StoreRQ *rq,
				  const unsigned char *file, size_t file_len)
{
	long off = dataset_offset_buf(file, file_len);
	if (off < 0)
		return DIMSE_SENDFAILED;
	std::vector<unsigned char> data(file + off, file + file_len);
	if (data.size() % 2)
		data.push_back(0);

	DcmDataset cmd;
	cmd.putAndInsertString(DCM_AffectedSOPClassUID, rq->AffectedSOPClassUID);
	cmd.putAndInsertUint16(DCM_CommandField, DIMSE_C_STORE_RQ);
	cmd.putAndInsertUint16(DCM_MessageID, rq->MessageID);
	cmd.putAndInsertUint16(DCM_Priority, 0);
	cmd.putAndInsertUint16(DCM_CommandDataSetType, 0x0000);
	cmd.putAndInsertString(DCM_AffectedSOPInstanceUID, rq->AffectedSOPInstanceUID);
	if (rq->opts & O_STORE_MOVEORIGINATORAETITLE) {
		cmd.putAndInsertString(DCM_MoveOriginatorApplicationEntityTitle,
				       rq->MoveOriginatorApplicationEntityTitle);
		cmd.putAndInsertUint16(DCM_MoveOriginatorMessageID, rq->MoveOriginatorID);
	}
	/* group length first; computed by the writer */
	cmd.computeGroupLengthAndPadding(EGL_recalcGL, EPD_noChange, EXS_LittleEndianImplicit);
	Uint32 len = cmd.calcElementLength(EXS_LittleEndianImplicit, EET_ExplicitLength);
	std::vector<unsigned char> cbuf(len + 16);
	DcmOutputBufferStream out(cbuf.data(), (offile_off_t)cbuf.size());
	cmd.transferInit();
	OFCondition c = cmd.write(out, EXS_LittleEndianImplicit, EET_ExplicitLength, NULL);
	cmd.transferEnd();
	if (c.bad())
		return c;
	void *wbuf = NULL;
	offile_off_t wlen = 0;
	out.flushBuffer(wbuf, wlen);
	c = write_pdvs(a, pc_id, DUL_COMMANDPDV, (const unsigned char *)wbuf, (size_t)wlen, OFTrue);
	if (c.bad())
		return c;
	return write_pdvs(a, pc_id, DUL_DATASETPDV, data.data(), data.size(), OFTrue);
}

extern "C" int dh_dcm_store_file(dh_dcm_assoc *a, int pc_id, const char *path, int raw,
				 const char *sop_class, const char *sop_instance, int timeout_s,
				 unsigned int *status, char *err, size_t errlen)
{
	return dh_dcm_store_file_ex(a, pc_id, path, raw, sop_class, sop_instance, NULL, 0, NULL, 0, timeout_s,
				    status, err, errlen);
}

static int is_ascii(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/*
 * Converts the data set's text to UTF-8 (Specific Character Set becomes
 * ISO_IR 192). Undeclared 8-bit text is read as Latin-1, as dh_dcm_ds_load
 * does; bytes the declared set cannot map are dropped rather than failing
 * the whole object.
 */
static OFCondition convert_to_utf8(DcmDataset *ds)
{
	OFString cs;
	if (ds->findAndGetOFStringArray(DCM_SpecificCharacterSet, cs).bad())
		cs.clear();
	size_t b = cs.find_first_not_of(' '), e = cs.find_last_not_of(' ');
	cs = b == OFString_npos ? OFString() : cs.substr(b, e - b + 1);
	if (cs == "ISO_IR 192")
		return EC_Normal;
	OFCondition c = ds->convertCharacterSet(cs, "ISO_IR 192", 0, OFTrue);
	if (c.bad() && cs.empty())
		c = ds->convertCharacterSet("ISO_IR 100", "ISO_IR 192", 0, OFTrue);
	if (c.bad())
		c = ds->convertCharacterSet(cs, "ISO_IR 192", DCMTypes::CF_discardIllegal, OFTrue);
	return c;
}

/* Sets one attribute (see dh_dcm_override). */
static OFCondition put_override(DcmDataset *ds, const dh_dcm_override *o)
{
	DcmTag tag((Uint16)(o->tag >> 16), (Uint16)(o->tag & 0xFFFF));
	if (o->vr && *o->vr) {
		/* a VR DCMTK does not know leaves the dictionary's */
		DcmVR vr(o->vr);
		if (vr.isStandard())
			tag.setVR(vr);
	}
	const char *value = o->value ? o->value : "";
	/* dictionary-less private tags and unknown VRs: the value's bytes as UN */
	if (tag.getEVR() == EVR_UNKNOWN || tag.getEVR() == EVR_UNKNOWN2B)
		tag.setVR(DcmVR(EVR_UN));
	DcmElement *el = NULL;
	OFCondition c = DcmItem::newDicomElementWithVR(el, tag);
	if (c.bad())
		return c;
	if (*value) {
		if (tag.getEVR() == EVR_SQ) {
			c = EC_IllegalCall; /* only an empty sequence can be written from text */
		} else if (tag.getEVR() == EVR_UN) {
			std::vector<Uint8> bytes(value, value + strlen(value));
			if (bytes.size() % 2)
				bytes.push_back(0);
			c = el->putUint8Array(bytes.data(), (unsigned long)bytes.size());
		} else {
			c = el->putString(value);
		}
	}
	if (c.good())
		c = ds->insert(el, OFTrue);
	if (c.bad())
		delete el;
	return c;
}

/* Applies the index's values to a data set that is about to leave the hub. */
static OFCondition apply_overrides(DcmFileFormat &ff, const dh_dcm_override *ov, int n_ov)
{
	DcmDataset *ds = ff.getDataset();
	OFCondition c = EC_Normal;
	int ascii = 1;
	for (int i = 0; i < n_ov && ascii; i++)
		ascii = is_ascii(ov[i].value);
	if (!ascii && (c = convert_to_utf8(ds)).bad())
		return c;
	for (int i = 0; i < n_ov; i++) {
		Uint16 group = (Uint16)(ov[i].tag >> 16);
		/* the meta and the character set are ours: values are UTF-8 text */
		if (group == 0x0000 || group == 0x0002 || ov[i].tag == DH_TAG(0x0008, 0x0005))
			continue;
		if ((c = put_override(ds, &ov[i])).bad())
			return c;
	}
	/* the meta follows the data set (the receiver builds its own from the C-STORE request) */
	OFString sop;
	if (ds->findAndGetOFString(DCM_SOPInstanceUID, sop).good())
		c = ff.getMetaInfo()->putAndInsertString(DCM_MediaStorageSOPInstanceUID, sop.c_str());
	return c;
}

/* The C-STORE request for one object (as a C-MOVE sub-operation when move_orig_ae is set). */
static void store_rq(dh_dcm_assoc *a, const char *sop_class, const char *sop_instance, const char *move_orig_ae,
		     unsigned int move_orig_msg_id, T_DIMSE_Message *rq)
{
	memset(rq, 0, sizeof(*rq));
	rq->CommandField = DIMSE_C_STORE_RQ;
	rq->msg.CStoreRQ.MessageID = a->assoc->nextMsgID++;
	copy_str(rq->msg.CStoreRQ.AffectedSOPClassUID, sizeof(DIC_UI), sop_class);
	copy_str(rq->msg.CStoreRQ.AffectedSOPInstanceUID, sizeof(DIC_UI), sop_instance);
	rq->msg.CStoreRQ.Priority = DIMSE_PRIORITY_MEDIUM;
	rq->msg.CStoreRQ.DataSetType = DIMSE_DATASET_PRESENT;
	if (move_orig_ae && *move_orig_ae) {
		copy_str(rq->msg.CStoreRQ.MoveOriginatorApplicationEntityTitle, sizeof(DIC_AE), move_orig_ae);
		rq->msg.CStoreRQ.MoveOriginatorID = (DIC_US)move_orig_msg_id;
		rq->msg.CStoreRQ.opts = O_STORE_MOVEORIGINATORAETITLE | O_STORE_MOVEORIGINATORID;
	}
}

/* Applies the overrides to a parsed object, re-encodes it in the context's transfer syntax and sends it. */
static OFCondition send_parsed(dh_dcm_assoc *a, int pc_id, T_DIMSE_Message *rq, DcmFileFormat &ff,
			       const dh_dcm_override *ov, int n_ov)
{
	OFCondition c = apply_overrides(ff, ov, n_ov);
	if (c.bad())
		return c;
	DcmDataset *ds = ff.getDataset();
	const char *ts = dh_dcm_assoc_pc_ts(a, pc_id);
	DcmXfer x(ts ? ts : DH_TS_IMPLICIT_LE);
	if (ds->getOriginalXfer() != x.getXfer() && (c = ds->chooseRepresentation(x.getXfer(), NULL)).bad())
		return c;
	return DIMSE_sendMessageUsingMemoryData(a->assoc, (T_ASC_PresentationContextID)pc_id, rq, NULL, ds, NULL,
					       NULL);
}

/* The response to a C-STORE just sent (or the error that kept it from being sent). */
static int finish_store(dh_dcm_assoc *a, const OFCondition &c, int timeout_s, unsigned int *status, char *err,
			size_t errlen)
{
	if (c.bad()) {
		set_err(err, errlen, "cannot send C-STORE", c);
		return DH_DCM_ERROR;
	}
	return await_response(a, timeout_s, status, NULL, err, errlen);
}

extern "C" int dh_dcm_store_file_ex(dh_dcm_assoc *a, int pc_id, const char *path, int raw,
				    const char *sop_class, const char *sop_instance,
				    const char *move_orig_ae, unsigned int move_orig_msg_id,
				    const dh_dcm_override *ov, int n_ov, int timeout_s,
				    unsigned int *status, char *err, size_t errlen)
{
	T_DIMSE_Message rq;
	OFCondition c;
	store_rq(a, sop_class, sop_instance, move_orig_ae, move_orig_msg_id, &rq);
	if (raw && n_ov == 0) {
		std::vector<unsigned char> file;
		FILE *f = fopen(path, "rb");
		if (!f) {
			set_err_text(err, errlen, "cannot open the file to send");
			return DH_DCM_ERROR;
		}
		unsigned char chunk[65536];
		size_t n;
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			file.insert(file.end(), chunk, chunk + n);
		fclose(f);
		c = send_raw_store(a, pc_id, &rq.msg.CStoreRQ, file.data(), file.size());
	} else {
		DcmFileFormat ff;
		c = ff.loadFile(path);
		if (c.good())
			c = send_parsed(a, pc_id, &rq, ff, ov, n_ov);
	}
	return finish_store(a, c, timeout_s, status, err, errlen);
}

extern "C" int dh_dcm_store_buffer(dh_dcm_assoc *a, int pc_id, const unsigned char *buf, size_t len, int raw,
				   const char *sop_class, const char *sop_instance, const char *move_orig_ae,
				   unsigned int move_orig_msg_id, const dh_dcm_override *ov, int n_ov,
				   int timeout_s, unsigned int *status, char *err, size_t errlen)
{
	T_DIMSE_Message rq;
	OFCondition c;
	store_rq(a, sop_class, sop_instance, move_orig_ae, move_orig_msg_id, &rq);
	if (raw && n_ov == 0) {
		c = send_raw_store(a, pc_id, &rq.msg.CStoreRQ, buf, len);
	} else {
		DcmFileFormat ff;
		DcmInputBufferStream in;
		in.setBuffer(buf, (offile_off_t)len);
		in.setEos();
		ff.transferInit();
		c = ff.read(in, EXS_Unknown, EGL_noChange);
		ff.transferEnd();
		if (c.good())
			c = send_parsed(a, pc_id, &rq, ff, ov, n_ov);
	}
	return finish_store(a, c, timeout_s, status, err, errlen);
}

extern "C" int dh_dcm_check_cancel(dh_dcm_assoc *a, unsigned int msg_id)
{
	OFCondition c = DIMSE_checkForCancelRQ(a->assoc, a->last_pcid, (DIC_US)msg_id);
	if (c.good())
		return 1;
	if (c == DIMSE_NODATAAVAILABLE)
		return 0;
	if (c == DUL_PEERABORTEDASSOCIATION || c == DUL_NETWORKCLOSED)
		return DH_DCM_ABORTED;
	return DH_DCM_ERROR;
}

struct move_cb_ctx {
	dh_dcm_move_progress cb;
	void *user;
	const int *cancel;   /* dh_dcm_move_ex: C-CANCEL the move once *cancel is set */
	T_ASC_Association *assoc;
	T_ASC_PresentationContextID pc_id;
	DIC_US msg_id;
	bool cancel_sent;
};

static void move_callback(void *data, T_DIMSE_C_MoveRQ *, int, T_DIMSE_C_MoveRSP *rsp)
{
	move_cb_ctx *ctx = (move_cb_ctx *)data;
	if (ctx->cb) {
		int counts[4] = { rsp->NumberOfRemainingSubOperations, rsp->NumberOfCompletedSubOperations,
				  rsp->NumberOfFailedSubOperations, rsp->NumberOfWarningSubOperations };
		ctx->cb(ctx->user, rsp->DimseStatus, counts);
	}
	if (ctx->cancel && *ctx->cancel && !ctx->cancel_sent) {
		/* the SCP answers with a final (FE00) response, which ends DIMSE_moveUser */
		DIMSE_sendCancelRequest(ctx->assoc, ctx->pc_id, ctx->msg_id);
		ctx->cancel_sent = true;
	}
}

extern "C" int dh_dcm_move(dh_dcm_assoc *a, int pc_id, const char *sop_class, const char *dest,
			   const dh_dcm_ds *ident, int timeout_s, dh_dcm_move_progress progress, void *user,
			   unsigned int *status, int counts[4], char *err, size_t errlen)
{
	return dh_dcm_move_ex(a, pc_id, sop_class, dest, ident, timeout_s, progress, user, NULL, status, counts,
			      NULL, err, errlen);
}

extern "C" int dh_dcm_move_ex(dh_dcm_assoc *a, int pc_id, const char *sop_class, const char *dest,
			      const dh_dcm_ds *ident, int timeout_s, dh_dcm_move_progress progress, void *user,
			      const int *cancel, unsigned int *status, int counts[4], char **failed_uids, char *err,
			      size_t errlen)
{
	if (failed_uids)
		*failed_uids = NULL;
	T_DIMSE_C_MoveRQ rq;
	T_DIMSE_C_MoveRSP rsp;
	memset(&rq, 0, sizeof(rq));
	memset(&rsp, 0, sizeof(rsp));
	rq.MessageID = a->assoc->nextMsgID++;
	copy_str(rq.AffectedSOPClassUID, sizeof(DIC_UI), sop_class);
	copy_str(rq.MoveDestination, sizeof(DIC_AE), dest);
	rq.Priority = DIMSE_PRIORITY_MEDIUM;
	rq.DataSetType = DIMSE_DATASET_PRESENT;
	move_cb_ctx ctx = { progress, user, cancel, a->assoc, (T_ASC_PresentationContextID)pc_id, rq.MessageID,
			    false };
	DcmDataset *detail = NULL, *rsp_ids = NULL;
	OFCondition c = DIMSE_moveUser(a->assoc, (T_ASC_PresentationContextID)pc_id, &rq,
				       const_cast<dh_dcm_ds *>(ident)->ff.getDataset(), move_callback, &ctx,
				       DIMSE_NONBLOCKING, timeout_s, NULL, NULL, NULL, &rsp, &detail, &rsp_ids,
				       OFFalse);
	delete detail;
	if (c.good() && failed_uids && rsp_ids) {
		OFString v;
		if (rsp_ids->findAndGetOFStringArray(DCM_FailedSOPInstanceUIDList, v).good() && !v.empty())
			*failed_uids = strdup(v.c_str());
	}
	delete rsp_ids;
	if (c.bad()) {
		set_err(err, errlen, "C-MOVE failed", c);
		return DH_DCM_ERROR;
	}
	*status = rsp.DimseStatus;
	counts[0] = rsp.NumberOfRemainingSubOperations;
	counts[1] = rsp.NumberOfCompletedSubOperations;
	counts[2] = rsp.NumberOfFailedSubOperations;
	counts[3] = rsp.NumberOfWarningSubOperations;
	return DH_DCM_OK;
}

/* ---- data sets --------------------------------------------------------- */

/* Makes s valid UTF-8 in place-copy: bytes that are not UTF-8 are read as Latin-1. */
static std::string to_utf8(const std::string &s)
{
	std::string out;
	out.reserve(s.size());
	size_t i = 0;
	while (i < s.size()) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		bool ok = n > 0 && i + n <= s.size();
		for (size_t k = 1; ok && k < n; k++)
			ok = ((unsigned char)s[i + k] >> 6) == 2;
		if (ok && c != 0) {
			out.append(s, i, n);
			i += n;
		} else {
			if (c == 0) {
				i++;
				continue;
			}
			out.push_back((char)(0xC0 | (c >> 6)));
			out.push_back((char)(0x80 | (c & 0x3F)));
			i++;
		}
	}
	return out;
}

static int copy_out(const OFString &v, char *buf, size_t len)
{
	std::string u = to_utf8(std::string(v.c_str(), v.length()));
	if (u.size() + 1 > len)
		return DH_DCM_ERROR;
	memcpy(buf, u.data(), u.size());
	buf[u.size()] = '\0';
	return DH_DCM_OK;
}

/* Loads path in read mode; values over 4 KiB stay on disk until needed. */
static dh_dcm_ds *load(const char *path, E_FileReadMode mode, const char *what, char *err, size_t errlen)
{
	dh_dcm_ds *d = new dh_dcm_ds();
	OFCondition c = d->ff.loadFile(path, EXS_Unknown, EGL_noChange, 4096, mode);
	if (c.bad()) {
		set_err(err, errlen, what, c);
		delete d;
		return NULL;
	}
	return d;
}

extern "C" int dh_dcm_ds_load(const char *path, dh_dcm_ds **out, char *err, size_t errlen)
{
	dh_dcm_ds *d = load(path, ERM_autoDetect, "cannot parse data set", err, errlen);
	if (!d)
		return DH_DCM_ERROR;
	DcmDataset *ds = d->ff.getDataset();
	if (ds->card() == 0) {
		set_err_text(err, errlen, "empty data set");
		delete d;
		return DH_DCM_ERROR;
	}
	/* convertToUTF8 fails on unknown character sets; values then come out as bytes and
	 * to_utf8() reads them as Latin-1 */
	OFString cs;
	if (ds->findAndGetOFStringArray(DCM_SpecificCharacterSet, cs).good() && !cs.empty())
		(void)ds->convertToUTF8();
	*out = d;
	return DH_DCM_OK;
}

extern "C" int dh_dcm_ds_load_meta(const char *path, dh_dcm_ds **out, char *err, size_t errlen)
{
	dh_dcm_ds *d = load(path, ERM_metaOnly, "cannot read file meta information", err, errlen);
	if (!d)
		return DH_DCM_ERROR;
	*out = d;
	return DH_DCM_OK;
}

extern "C" int dh_dcm_ds_new(dh_dcm_ds **out)
{
	*out = new dh_dcm_ds();
	return DH_DCM_OK;
}

extern "C" void dh_dcm_ds_free(dh_dcm_ds *ds)
{
	delete ds;
}

static int get_from(DcmItem *item, uint32_t tag, char *buf, size_t len)
{
	DcmElement *e = NULL;
	DcmTagKey key((Uint16)(tag >> 16), (Uint16)(tag & 0xFFFF));
	if (item->findAndGetElement(key, e, OFFalse).bad() || !e)
		return DH_DCM_ABSENT;
	OFString v;
	if (e->getLength() == 0) {
		if (len == 0)
			return DH_DCM_ERROR;
		buf[0] = '\0';
		return DH_DCM_OK;
	}
	if (e->getOFStringArray(v, OFTrue).bad())
		return DH_DCM_ERROR;
	return copy_out(v, buf, len);
}

extern "C" int dh_dcm_ds_get(const dh_dcm_ds *ds, uint32_t tag, char *buf, size_t len)
{
	return get_from(const_cast<dh_dcm_ds *>(ds)->ff.getDataset(), tag, buf, len);
}

extern "C" int dh_dcm_ds_get_meta(const dh_dcm_ds *ds, uint32_t tag, char *buf, size_t len)
{
	return get_from(const_cast<dh_dcm_ds *>(ds)->ff.getMetaInfo(), tag, buf, len);
}

static DcmObject *find_path(DcmDataset *ds, const char *path, OFBool create)
{
	DcmPathProcessor proc;
	if (proc.findOrCreatePath(ds, path, create).bad())
		return NULL;
	OFList<DcmPath *> results;
	if (proc.getResults(results) == 0)
		return NULL;
	DcmPath *p = results.front();
	DcmPathNode *n = p->back();
	return n ? n->m_obj : NULL;
}

extern "C" int dh_dcm_ds_get_path(const dh_dcm_ds *ds, const char *path, char *buf, size_t len)
{
	DcmObject *o = find_path(const_cast<dh_dcm_ds *>(ds)->ff.getDataset(), path, OFFalse);
	if (!o || !o->isLeaf())
		return DH_DCM_ABSENT;
	DcmElement *e = OFstatic_cast(DcmElement *, o);
	OFString v;
	if (e->getLength() == 0) {
		if (len == 0)
			return DH_DCM_ERROR;
		buf[0] = '\0';
		return DH_DCM_OK;
	}
	if (e->getOFStringArray(v, OFTrue).bad())
		return DH_DCM_ERROR;
	return copy_out(v, buf, len);
}

extern "C" int dh_dcm_ds_count(const dh_dcm_ds *ds, const char *path)
{
	DcmObject *o = find_path(const_cast<dh_dcm_ds *>(ds)->ff.getDataset(), path, OFFalse);
	if (!o || o->ident() != EVR_SQ)
		return 0;
	return (int)OFstatic_cast(DcmSequenceOfItems *, o)->card();
}

extern "C" int dh_dcm_ds_has(const dh_dcm_ds *ds, uint32_t tag)
{
	DcmTagKey key((Uint16)(tag >> 16), (Uint16)(tag & 0xFFFF));
	return const_cast<dh_dcm_ds *>(ds)->ff.getDataset()->tagExists(key, OFFalse) ? 1 : 0;
}

extern "C" int dh_dcm_ds_put(dh_dcm_ds *ds, uint32_t tag, const char *value)
{
	DcmTagKey key((Uint16)(tag >> 16), (Uint16)(tag & 0xFFFF));
	OFCondition c = ds->ff.getDataset()->putAndInsertString(key, value ? value : "");
	return c.good() ? DH_DCM_OK : DH_DCM_ERROR;
}

extern "C" int dh_dcm_ds_put_path(dh_dcm_ds *ds, const char *path, const char *value)
{
	DcmObject *o = find_path(ds->ff.getDataset(), path, OFTrue);
	if (!o)
		return DH_DCM_ERROR;
	if (!o->isLeaf())
		return value && *value ? DH_DCM_ERROR : DH_DCM_OK; /* an (empty) sequence or item */
	OFCondition c = OFstatic_cast(DcmElement *, o)->putString(value ? value : "");
	return c.good() ? DH_DCM_OK : DH_DCM_ERROR;
}

extern "C" int dh_dcm_ds_apply_overrides(dh_dcm_ds *ds, const dh_dcm_override *ov, int n_ov, char *err,
					 size_t errlen)
{
	OFCondition c = apply_overrides(ds->ff, ov, n_ov);
	if (c.bad()) {
		set_err(err, errlen, "cannot apply the index's values", c);
		return DH_DCM_ERROR;
	}
	return DH_DCM_OK;
}

extern "C" int dh_dcm_ds_save(dh_dcm_ds *ds, const char *path, const char *ts, char *err, size_t errlen)
{
	DcmXfer x(ts ? ts : DH_TS_EXPLICIT_LE);
	OFCondition c = ds->ff.saveFile(path, x.getXfer());
	if (c.bad()) {
		set_err(err, errlen, "cannot write file", c);
		return DH_DCM_ERROR;
	}
	return DH_DCM_OK;
}

/* Writes ff as a DICOM file in transfer syntax xfer into out, one buffer-full at a time. */
static OFCondition write_to_memory(DcmFileFormat &ff, E_TransferSyntax xfer, std::vector<unsigned char> &out)
{
	std::vector<unsigned char> chunk(1 << 16);
	DcmOutputBufferStream os(chunk.data(), (offile_off_t)chunk.size());
	OFCondition c;
	ff.transferInit();
	do {
		c = ff.write(os, xfer, EET_ExplicitLength, NULL, EGL_recalcGL, EPD_noChange, 0, 0, 0, EWM_fileformat);
		if (c.good() || c == EC_StreamNotifyClient) {
			if (c.good())
				os.flush();
			void *p = NULL;
			offile_off_t n = 0;
			os.flushBuffer(p, n);
			if (n > 0)
				out.insert(out.end(), (unsigned char *)p, (unsigned char *)p + n);
		}
	} while (c == EC_StreamNotifyClient);
	ff.transferEnd();
	return c;
}

extern "C" int dh_dcm_render(const char *path, const unsigned char *buf, size_t len, const dh_dcm_override *ov,
			     int n_ov, unsigned char **out, size_t *out_len, char *err, size_t errlen)
{
	*out = NULL;
	*out_len = 0;
	DcmFileFormat ff;
	OFCondition c;
	if (path) {
		c = ff.loadFile(path);
	} else {
		DcmInputBufferStream in;
		in.setBuffer(buf, (offile_off_t)len);
		in.setEos();
		ff.transferInit();
		c = ff.read(in, EXS_Unknown, EGL_noChange);
		ff.transferEnd();
	}
	if (c.bad()) {
		set_err(err, errlen, "cannot parse the stored object", c);
		return DH_DCM_ERROR;
	}
	if ((c = apply_overrides(ff, ov, n_ov)).bad()) {
		set_err(err, errlen, "cannot apply the index's values", c);
		return DH_DCM_ERROR;
	}
	/* the stored (native) transfer syntax: pixel data stays as it came, compressed or not */
	E_TransferSyntax xfer = ff.getDataset()->getOriginalXfer();
	std::vector<unsigned char> v;
	try {
		c = write_to_memory(ff, xfer, v);
	} catch (const std::bad_alloc &) {
		c = EC_MemoryExhausted;
	}
	if (c.bad()) {
		set_err(err, errlen, "cannot encode the object", c);
		return DH_DCM_ERROR;
	}
	unsigned char *m = (unsigned char *)malloc(v.size() ? v.size() : 1);
	if (!m) {
		set_err_text(err, errlen, "out of memory");
		return DH_DCM_ERROR;
	}
	if (!v.empty())
		memcpy(m, v.data(), v.size());
	*out = m;
	*out_len = v.size();
	return DH_DCM_OK;
}

/* Byte offset of the data set in a DICOM file held in memory (0 without meta), or -1. */
static long dataset_offset_buf(const unsigned char *b, size_t n)
{
	if (n < 132 || memcmp(b + 128, "DICM", 4) != 0)
		return 0;
	size_t off = 132;
	/* group 0002 elements are always explicit VR little endian */
	while (off + 8 <= n && (b[off] | (b[off + 1] << 8)) == 0x0002) {
		char vr[3] = { (char)b[off + 4], (char)b[off + 5], 0 };
		unsigned long vlen;
		size_t hdr;
		if (!strcmp(vr, "OB") || !strcmp(vr, "OW") || !strcmp(vr, "SQ") || !strcmp(vr, "UN") ||
		    !strcmp(vr, "UT") || !strcmp(vr, "UC") || !strcmp(vr, "UR")) {
			if (off + 12 > n)
				return -1;
			vlen = (unsigned long)b[off + 8] | ((unsigned long)b[off + 9] << 8) |
			       ((unsigned long)b[off + 10] << 16) | ((unsigned long)b[off + 11] << 24);
			hdr = 12;
		} else {
			vlen = (unsigned long)(b[off + 6] | (b[off + 7] << 8));
			hdr = 8;
		}
		off += hdr + vlen;
	}
	return off <= n ? (long)off : -1;
}

extern "C" long dh_dcm_file_dataset_offset(const char *path)
{
	/* the meta header is small: its first 64 KiB are plenty */
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	std::vector<unsigned char> head(65536);
	size_t n = fread(head.data(), 1, head.size(), f);
	fclose(f);
	return dataset_offset_buf(head.data(), n);
}

/* ---- N-CREATE / N-SET (MPPS) --------------------------------------------- */

/* A DcmConsumer that appends to a byte vector: lets DIMSE hand us a data set's bytes unparsed. */
class VecConsumer : public DcmConsumer {
public:
	std::vector<unsigned char> bytes;
	OFBool good() const override { return OFTrue; }
	OFCondition status() const override { return EC_Normal; }
	OFBool isFlushed() const override { return OFTrue; }
	offile_off_t avail() const override { return (offile_off_t)1 << 30; }
	offile_off_t write(const void *buf, offile_off_t n) override
	{
		const unsigned char *b = (const unsigned char *)buf;
		bytes.insert(bytes.end(), b, b + n);
		return n;
	}
	void flush() override {}
};

/* The consumer must exist before DcmOutputStream's constructor sees it: hold it in a base. */
struct VecHolder {
	VecConsumer consumer;
};

class VecOutputStream : private VecHolder, public DcmOutputStream {
public:
	VecOutputStream() : VecHolder(), DcmOutputStream(&consumer) {}
	std::vector<unsigned char> &bytes() { return consumer.bytes; }
};

/*
 * Walks Implicit VR Little Endian bytes checking that every defined length
 * fits in what holds it (the buffer, an item, a sequence). DCMTK allocates
 * an element's declared length (up to 4 GiB) before it finds the stream too
 * short, so a peer's few bytes could cost gigabytes; this refuses them
 * first. Sequences are told from values by the data dictionary, as DCMTK
 * does for Implicit VR. Returns 1 when the lengths fit.
 */
static int implicit_lengths_fit(const unsigned char *b, size_t end, size_t *pos, int depth, uint32_t stop)
{
	if (depth > 32)
		return 0;
	while (*pos < end) {
		if (end - *pos < 8)
			return 0;
		const unsigned char *h = b + *pos;
		uint32_t tag = ((uint32_t)(h[0] | h[1] << 8) << 16) | (uint32_t)(h[2] | h[3] << 8);
		uint32_t vlen = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
		*pos += 8;
		if (stop && tag == stop)
			return 1;
		if (tag == 0xFFFEE00Du || tag == 0xFFFEE0DDu)
			return 0; /* a delimiter that closes nothing open here */
		if (vlen == 0xFFFFFFFFu) {
			if (!implicit_lengths_fit(b, end, pos, depth + 1, tag == 0xFFFEE000u ? 0xFFFEE00Du : 0xFFFEE0DDu))
				return 0;
			continue;
		}
		if (vlen > end - *pos)
			return 0;
		DcmTag t((Uint16)(tag >> 16), (Uint16)(tag & 0xFFFF));
		if (tag == 0xFFFEE000u || t.getEVR() == EVR_SQ) {
			size_t sub = *pos;
			if (!implicit_lengths_fit(b, *pos + vlen, &sub, depth + 1, 0))
				return 0;
		}
		*pos += vlen;
	}
	return 1; /* a missing final delimiter is DCMTK's to judge */
}

static OFCondition parse_bytes(const unsigned char *buf, size_t len, const char *ts, DcmDataset *ds)
{
	size_t pos = 0;
	if ((!ts || !*ts || strcmp(ts, DH_TS_IMPLICIT_LE) == 0) && !implicit_lengths_fit(buf, len, &pos, 0, 0))
		return EC_InvalidStream;
	DcmInputBufferStream in;
	in.setBuffer(buf, (offile_off_t)len);
	in.setEos();
	DcmXfer x(ts && *ts ? ts : DH_TS_IMPLICIT_LE);
	ds->clear();
	ds->transferInit();
	OFCondition c = ds->read(in, x.getXfer(), EGL_noChange);
	ds->transferEnd();
	return c;
}

extern "C" int dh_dcm_ds_parse(const unsigned char *buf, size_t len, const char *ts, dh_dcm_ds **out,
			       char *err, size_t errlen)
{
	*out = NULL;
	dh_dcm_ds *d = new dh_dcm_ds();
	OFCondition c = parse_bytes(buf, len, ts, d->ff.getDataset());
	if (c.bad()) {
		set_err(err, errlen, "cannot parse data set", c);
		delete d;
		return DH_DCM_ERROR;
	}
	*out = d;
	return DH_DCM_OK;
}

extern "C" int dh_dcm_receive_dataset_raw(dh_dcm_assoc *a, int timeout_s, unsigned char **bytes, size_t *len,
					  dh_dcm_ds **out, char *err, size_t errlen)
{
	*bytes = NULL;
	*len = 0;
	*out = NULL;
	VecOutputStream os;
	T_ASC_PresentationContextID pcid = 0;
	OFCondition c = DIMSE_receiveDataSetInFile(a->assoc, DIMSE_NONBLOCKING, timeout_s, &pcid, &os, NULL, NULL);
	if (c.bad())
		return map_receive_cond(c, err, errlen);
	std::vector<unsigned char> &v = os.bytes();
	const char *ts = dh_dcm_assoc_pc_ts(a, pcid);
	/* a data set that does not parse was still read whole: the association goes on */
	if (dh_dcm_ds_parse(v.data(), v.size(), ts, out, err, errlen) != DH_DCM_OK)
		return DH_DCM_OK;
	*bytes = (unsigned char *)malloc(v.size() ? v.size() : 1);
	if (!*bytes) {
		dh_dcm_ds_free(*out);
		*out = NULL;
		set_err_text(err, errlen, "out of memory");
		return DH_DCM_ERROR;
	}
	if (!v.empty())
		memcpy(*bytes, v.data(), v.size());
	*len = v.size();
	return DH_DCM_OK;
}

extern "C" int dh_dcm_ds_encode(const dh_dcm_ds *ds, const char *ts, unsigned char **buf, size_t *len,
				char *err, size_t errlen)
{
	*buf = NULL;
	*len = 0;
	DcmDataset *d = const_cast<dh_dcm_ds *>(ds)->ff.getDataset();
	DcmXfer x(ts && *ts ? ts : DH_TS_IMPLICIT_LE);
	OFCondition c = d->chooseRepresentation(x.getXfer(), NULL);
	if (c.good()) {
		VecOutputStream os;
		d->transferInit();
		c = d->write(os, x.getXfer(), EET_ExplicitLength, NULL);
		d->transferEnd();
		os.flush();
		if (c.good()) {
			std::vector<unsigned char> &v = os.bytes();
			*buf = (unsigned char *)malloc(v.size() ? v.size() : 1);
			if (!*buf) {
				set_err_text(err, errlen, "out of memory");
				return DH_DCM_ERROR;
			}
			if (!v.empty())
				memcpy(*buf, v.data(), v.size());
			*len = v.size();
			return DH_DCM_OK;
		}
	}
	set_err(err, errlen, "cannot encode data set", c);
	return DH_DCM_ERROR;
}

extern "C" int dh_dcm_ds_merge(dh_dcm_ds *dst, const dh_dcm_ds *src)
{
	DcmDataset *s = const_cast<dh_dcm_ds *>(src)->ff.getDataset();
	DcmDataset *d = dst->ff.getDataset();
	for (unsigned long i = 0; i < s->card(); i++) {
		DcmElement *e = OFstatic_cast(DcmElement *, s->getElement(i)->clone());
		if (d->insert(e, OFTrue).bad()) {
			delete e;
			return DH_DCM_ERROR;
		}
	}
	return DH_DCM_OK;
}

extern "C" int dh_dcm_ds_tags(const dh_dcm_ds *ds, uint32_t *tags, int max)
{
	DcmDataset *d = const_cast<dh_dcm_ds *>(ds)->ff.getDataset();
	int n = (int)d->card();
	for (int i = 0; i < n && i < max; i++) {
		const DcmTag &t = d->getElement((unsigned long)i)->getTag();
		tags[i] = DH_TAG(t.getGroup(), t.getElement());
	}
	return n;
}

/* Sends a command set and then data set bytes as they are (no parsing, no re-encoding). */
static OFCondition send_raw_message(dh_dcm_assoc *a, int pc_id, DcmDataset &cmd, const unsigned char *data,
				    size_t len)
{
	std::vector<unsigned char> d(data, data + len);
	if (d.size() % 2)
		d.push_back(0);
	cmd.computeGroupLengthAndPadding(EGL_recalcGL, EPD_noChange, EXS_LittleEndianImplicit);
	VecOutputStream out;
	cmd.transferInit();
	OFCondition c = cmd.write(out, EXS_LittleEndianImplicit, EET_ExplicitLength, NULL);
	cmd.transferEnd();
	out.flush();
	if (c.bad())
		return c;
	std::vector<unsigned char> &cb = out.bytes();
	c = write_pdvs(a, pc_id, DUL_COMMANDPDV, cb.data(), cb.size(), OFTrue);
	if (c.bad())
		return c;
	return write_pdvs(a, pc_id, DUL_DATASETPDV, d.data(), d.size(), OFTrue);
}

/* N-CREATE (create != 0) or N-SET with a data set sent as is; waits for the response. */
static int n_request(dh_dcm_assoc *a, int create, int pc_id, const char *sop_class, const char *sop_instance,
		     const unsigned char *data, size_t len, int timeout_s, unsigned int *status,
		     char *affected_out, char *err, size_t errlen)
{
	if (!data || len == 0) {
		set_err_text(err, errlen, create ? "N-CREATE needs a data set" : "N-SET needs a data set");
		return DH_DCM_ERROR;
	}
	DcmDataset cmd;
	Uint16 msg_id = a->assoc->nextMsgID++;
	cmd.putAndInsertString(create ? DCM_AffectedSOPClassUID : DCM_RequestedSOPClassUID, sop_class);
	cmd.putAndInsertUint16(DCM_CommandField, create ? DIMSE_N_CREATE_RQ : DIMSE_N_SET_RQ);
	cmd.putAndInsertUint16(DCM_MessageID, msg_id);
	cmd.putAndInsertUint16(DCM_CommandDataSetType, 0x0000);
	if (sop_instance && *sop_instance)
		cmd.putAndInsertString(create ? DCM_AffectedSOPInstanceUID : DCM_RequestedSOPInstanceUID,
				       sop_instance);
	OFCondition c = send_raw_message(a, pc_id, cmd, data, len);
	if (c.bad()) {
		set_err(err, errlen, create ? "cannot send N-CREATE" : "cannot send N-SET", c);
		return DH_DCM_ERROR;
	}
	a->rsp_instance[0] = '\0';
	int rc = await_response(a, timeout_s, status, NULL, err, errlen);
	if (rc == DH_DCM_OK && affected_out)
		copy_str(affected_out, 65, a->rsp_instance);
	return rc;
}

extern "C" int dh_dcm_n_create(dh_dcm_assoc *a, int pc_id, const char *sop_class, const char *sop_instance,
			       const unsigned char *data, size_t len, int timeout_s, unsigned int *status,
			       char affected_out[65], char *err, size_t errlen)
{
	return n_request(a, 1, pc_id, sop_class, sop_instance, data, len, timeout_s, status, affected_out, err,
			 errlen);
}

extern "C" int dh_dcm_n_set(dh_dcm_assoc *a, int pc_id, const char *sop_class, const char *sop_instance,
			    const unsigned char *data, size_t len, int timeout_s, unsigned int *status, char *err,
			    size_t errlen)
{
	return n_request(a, 0, pc_id, sop_class, sop_instance, data, len, timeout_s, status, NULL, err, errlen);
}

extern "C" int dh_dcm_ds_to_utf8(dh_dcm_ds *ds)
{
	DcmDataset *d = ds->ff.getDataset();
	OFString cs;
	if (d->findAndGetOFStringArray(DCM_SpecificCharacterSet, cs).bad() || cs.empty())
		return DH_DCM_OK;
	return d->convertToUTF8().good() ? DH_DCM_OK : DH_DCM_ERROR;
}

/* ---- queued responses (dh_dcm_rspq_*) ------------------------------------- */

#define RSPQ_CHUNK 65536

static double rspq_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

struct dh_dcm_rspq {
	dh_dcm_assoc *a;
	T_ASC_PresentationContextID pc_id;
	E_TransferSyntax xfer;
	size_t frag;                    /* data bytes per PDV: DIMSE's buffer, cut to the peer's PDU size */
	std::vector<unsigned char> cmd; /* the command set, the same for every response */
	std::vector<unsigned char> out; /* PDUs not written yet */
	size_t write_at;                /* out's size that triggers a write */
	double oldest;                  /* when the first response in out was queued */
	bool broken;
};

/* Appends len bytes as P-DATA-TF PDUs of one PDV each, as DUL frames them (PS3.8 9.3.5). */
static void rspq_put_pdus(dh_dcm_rspq *q, bool command, const unsigned char *b, size_t len)
{
	size_t off = 0;
	do {
		size_t n = len - off < q->frag ? len - off : q->frag;
		uint32_t pdv = (uint32_t)n + 2, pdu = pdv + 4;
		unsigned char h[12] = { 0x04, 0x00, (unsigned char)(pdu >> 24), (unsigned char)(pdu >> 16),
					(unsigned char)(pdu >> 8), (unsigned char)pdu, (unsigned char)(pdv >> 24),
					(unsigned char)(pdv >> 16), (unsigned char)(pdv >> 8), (unsigned char)pdv,
					(unsigned char)q->pc_id,
					(unsigned char)((command ? 1 : 0) | (off + n == len ? 2 : 0)) };
		q->out.insert(q->out.end(), h, h + sizeof(h));
		q->out.insert(q->out.end(), b + off, b + off + n);
		off += n;
	} while (off < len);
}

/* Encodes ds as sendDcmDataset does: explicit lengths, group lengths recalculated, no padding. */
static OFCondition rspq_encode(DcmDataset *ds, E_TransferSyntax xfer, E_GrpLenEncoding gl,
			       std::vector<unsigned char> &out)
{
	VecOutputStream os;
	ds->transferInit();
	OFCondition c = ds->write(os, xfer, EET_ExplicitLength, NULL, gl, EPD_withoutPadding);
	ds->transferEnd();
	os.flush();
	if (c.good())
		out.swap(os.bytes());
	return c;
}

extern "C" int dh_dcm_rspq_new(dh_dcm_assoc *a, const dh_dcm_cmd *cmd, unsigned int status, dh_dcm_rspq **out)
{
	*out = NULL;
	const char *ts = dh_dcm_assoc_pc_ts(a, cmd->pc_id);
	if (!ts || cmd->type != DH_DIMSE_C_FIND_RQ)
		return DH_DCM_ERROR;
	DcmXfer x(ts);
	if (x.getXfer() == EXS_Unknown || x.isEncapsulated() || x.getStreamCompression() != ESC_none)
		return DH_DCM_ERROR; /* a C-FIND context carries a native syntax; anything else stays with DIMSE */
	dh_dcm_rspq *q = new (std::nothrow) dh_dcm_rspq();
	if (!q)
		return DH_DCM_ERROR;
	q->a = a;
	q->pc_id = (T_ASC_PresentationContextID)cmd->pc_id;
	q->xfer = x.getXfer();
	size_t frag = a->assoc->sendPDVLength ? a->assoc->sendPDVLength : ASC_MINIMUMPDUSIZE - 12;
	Uint32 max_out = dcmMaxOutgoingPDUSize.get();
	if (max_out > 12 && frag + 12 > max_out)
		frag = max_out - 12;
	long peer = a->assoc->params->theirMaxPDUReceiveSize;
	if (peer >= 14 && frag + 12 > (size_t)peer)
		frag = (size_t)peer - 12;
	q->frag = frag;
	/* the command set of DIMSE_buildCmdObject for a C-FIND-RSP with a data set */
	DcmDataset c;
	OFCondition e = c.putAndInsertUint32(DCM_CommandGroupLength, 0);
	if (e.good())
		e = c.putAndInsertString(DCM_AffectedSOPClassUID, cmd->sop_class);
	if (e.good())
		e = c.putAndInsertUint16(DCM_CommandField, DIMSE_C_FIND_RSP);
	if (e.good())
		e = c.putAndInsertUint16(DCM_MessageIDBeingRespondedTo, (Uint16)cmd->msg_id);
	if (e.good())
		e = c.putAndInsertUint16(DCM_CommandDataSetType, DIMSE_DATASET_PRESENT);
	if (e.good())
		e = c.putAndInsertUint16(DCM_Status, (Uint16)status);
	try {
		if (e.good())
			e = rspq_encode(&c, EXS_LittleEndianImplicit, EGL_withGL, q->cmd);
	} catch (const std::bad_alloc &) {
		e = EC_MemoryExhausted;
	}
	if (e.bad()) {
		delete q;
		return DH_DCM_ERROR;
	}
	*out = q;
	return DH_DCM_OK;
}

extern "C" int dh_dcm_rspq_flush(dh_dcm_rspq *q)
{
	if (q->broken)
		return DH_DCM_ERROR;
	DcmTransportConnection *conn = DUL_getTransportConnection(q->a->assoc->DULassociation);
	size_t off = 0;
	while (off < q->out.size()) {
		ssize_t n = conn ? conn->write(q->out.data() + off, q->out.size() - off) : -1;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			q->broken = true;
			q->out.clear();
			return DH_DCM_ERROR;
		}
		off += (size_t)n;
	}
	/*
	 * The first response goes out alone, so that the SCU starts on it at
	 * once; then each write may be twice the last, up to RSPQ_CHUNK: a few
	 * writes for hundreds of responses, and the SCU never waits long.
	 */
	q->write_at = q->out.size() * 2 < RSPQ_CHUNK ? q->out.size() * 2 : RSPQ_CHUNK;
	q->out.clear();
	return DH_DCM_OK;
}

extern "C" double dh_dcm_rspq_age_ms(const dh_dcm_rspq *q)
{
	return q->out.empty() ? 0.0 : rspq_now_ms() - q->oldest;
}

extern "C" int dh_dcm_rspq_add(dh_dcm_rspq *q, const dh_dcm_ds *ds)
{
	if (q->broken)
		return DH_DCM_ERROR;
	DcmDataset *d = const_cast<dh_dcm_ds *>(ds)->ff.getDataset();
	/* the checks DIMSE_sendMessage makes before it sends a data set */
	if (d->isEmpty() || !d->canWriteXfer(q->xfer))
		return DH_DCM_ERROR;
	size_t had = q->out.size();
	try {
		std::vector<unsigned char> data;
		if (rspq_encode(d, q->xfer, EGL_recalcGL, data).bad())
			return DH_DCM_ERROR;
		if (data.size() % 2)
			data.push_back(0); /* not for a native syntax; DIMSE pads the same way */
		if (q->out.empty())
			q->oldest = rspq_now_ms();
		rspq_put_pdus(q, true, q->cmd.data(), q->cmd.size());
		rspq_put_pdus(q, false, data.data(), data.size());
	} catch (const std::bad_alloc &) {
		q->out.resize(had); /* no half message in the queue */
		return DH_DCM_ERROR;
	}
	if (q->out.size() >= q->write_at)
		return dh_dcm_rspq_flush(q);
	return DH_DCM_OK;
}

extern "C" void dh_dcm_rspq_free(dh_dcm_rspq *q)
{
	delete q;
}
