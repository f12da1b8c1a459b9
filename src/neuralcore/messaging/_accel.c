/*
 * Compiled glue for the bridged publish (optional: built when a C compiler is present;
 * without it, the same steps run as Python in _codec.py and bridges/_runner.py).
 *
 * It implements no encoding: msgspec's MessagePack encoder writes every byte. Two
 * callables take the common case of each step and hand every other input, unchanged, to
 * the Python code they wrap, so each input gets the bytes, the answer or the error that
 * the Python code gives:
 *
 * - ``Encoder(message_cls, encode, max_size, fallback, empty)``: ``MsgpackCodec.encode``.
 *   For an exact ``Message`` whose headers are None or an exact dict and whose payload
 *   and headers are *flat* (the rule of ``_codec._flat``: leaves of the exact types str,
 *   int, float, bool, None and bytes; a dict with leaf keys, a list or a tuple whose items
 *   are leaves or lists/tuples of leaves), it builds the envelope tuple and calls the
 *   msgspec encoder on it. A result over ``max_size`` bytes, an encoder error of the kinds
 *   the Python codec turns into a refusal, or any other input goes to ``fallback`` (the
 *   Python encode), which raises the refusal naming the cause. A flat value holds no set
 *   and is shallow, so no walk is needed; that is the Python codec's own rule.
 * - ``Sink(message_cls, encode, plain, local, mem, limit, ready, other)``: a bridge's tap
 *   (``BridgeRunner._sink``). For an exact ``Message`` of a channel in ``plain`` whose
 *   origin is ``local`` while ``mem`` holds fewer than ``limit`` items, it encodes the
 *   message (``encode``; directly when that is an Encoder), appends
 *   ``(channel, data, key, persistent, 0)`` to ``mem``, calls ``ready()`` when that made
 *   ``mem`` non-empty, and returns True. Anything else is ``other(msg)``.
 *
 * - ``Maker(message_cls, counter, origin, copy, check, now)``: the bus's new-message step
 *   of ``publish``. ``make(channel, payload, priority, headers, default)`` returns None
 *   on any thread but the one ``bind()`` was called on (the bus's loop thread; None
 *   before that), else a new instance of ``message_cls`` (its ``tp_alloc``, as
 *   ``object.__new__``) with the slots the bus sets: the priority (``default`` for None,
 *   an exact int in the signed 64-bit range as it is, anything else through ``check``,
 *   which refuses it), headers copied (an exact dict with exact str keys by
 *   ``PyDict_Copy``, None when None or empty; anything else through ``copy``, which
 *   refuses bad headers), the id ``next(counter)``, the timestamp ``now()``, attempt 1,
 *   the origin, no tracker.
 *
 * Why C: the same steps in Python cost ~1.3 us per bridged publish (attribute reads, the
 * flatness loop, two calls), about half of what a Kafka bridge pays per message; here
 * they are a few loads around the msgspec call.
 *
 * Slots are read at the offsets of ``message_cls``'s member descriptors (checked to be
 * writable object slots when a callable is made), from instances whose type is exactly
 * ``message_cls``; an unset slot takes the Python path. Values are held with a new
 * reference across every call that can run Python code.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>

#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif
#ifndef Py_READONLY
#define Py_READONLY READONLY
#endif

enum { F_ID, F_CHANNEL, F_PRIORITY, F_TIMESTAMP, F_HEADERS, F_PAYLOAD, F_ATTEMPT, F_ORIGIN, F_COUNT };
static const char *const slot_names[F_COUNT] = {
    "_id", "channel", "priority", "timestamp", "_headers", "payload", "attempt", "origin",
};

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* Exception kinds of the msgspec encoder that the Python codec turns into a refusal (the
   fallback raises it, naming the cause); any other error propagates as it is. */
static PyObject *refusal_kinds;

/* The offset of ``cls``'s slot ``name``: a member descriptor of ``cls`` itself, a
   writable object slot inside the instance. -1 with TypeError otherwise. */
static Py_ssize_t
slot_offset(PyTypeObject *cls, const char *name)
{
    PyObject *descr = cls->tp_dict == NULL ? NULL : PyDict_GetItemString(cls->tp_dict, name);
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)
        || PyDescr_TYPE(descr) != cls) {
        PyErr_Format(PyExc_TypeError, "message_cls has no slot %s of its own", name);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != Py_T_OBJECT_EX || (member->flags & Py_READONLY)
        || member->offset < (Py_ssize_t)sizeof(PyObject)
        || member->offset + (Py_ssize_t)sizeof(PyObject *) > cls->tp_basicsize) {
        PyErr_Format(PyExc_TypeError, "message_cls slot %s is not a writable object slot",
                     name);
        return -1;
    }
    return member->offset;
}

/* The offsets of ``cls``'s slots in slot_names order (and, when ``tracker`` is not NULL,
   of ``_tracker``), all distinct; -1 with TypeError when ``cls`` is not a type with
   those slots of its own. */
static int
slot_offsets(PyObject *cls, Py_ssize_t *offsets, Py_ssize_t *tracker)
{
    if (!PyType_Check(cls)) {
        PyErr_Format(PyExc_TypeError, "message_cls must be a type, got %.80s",
                     Py_TYPE(cls)->tp_name);
        return -1;
    }
    Py_ssize_t all[F_COUNT + 1];
    int count = 0;
    for (int i = 0; i <= F_COUNT; i++) {
        if (i == F_COUNT && tracker == NULL) {
            break;
        }
        all[i] = slot_offset((PyTypeObject *)cls, i == F_COUNT ? "_tracker" : slot_names[i]);
        if (all[i] < 0) {
            return -1;
        }
        for (int j = 0; j < i; j++) {
            if (all[j] == all[i]) {
                PyErr_SetString(PyExc_TypeError, "message_cls slots share an offset");
                return -1;
            }
        }
        count = i + 1;
    }
    memcpy(offsets, all, sizeof(Py_ssize_t) * F_COUNT);
    if (tracker != NULL && count == F_COUNT + 1) {
        *tracker = all[F_COUNT];
    }
    return 0;
}

static inline int
is_leaf(PyObject *obj)
{
    PyTypeObject *t = Py_TYPE(obj);
    return t == &PyUnicode_Type || t == &PyLong_Type || t == &PyFloat_Type
           || t == &PyBool_Type || obj == Py_None || t == &PyBytes_Type;
}

/* A leaf, or an exact list/tuple of leaves. */
static inline int
flat_item(PyObject *obj)
{
    if (is_leaf(obj)) {
        return 1;
    }
    PyObject **items;
    Py_ssize_t n;
    if (PyList_CheckExact(obj)) {
        items = ((PyListObject *)obj)->ob_item;
        n = PyList_GET_SIZE(obj);
    }
    else if (PyTuple_CheckExact(obj)) {
        items = ((PyTupleObject *)obj)->ob_item;
        n = PyTuple_GET_SIZE(obj);
    }
    else {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!is_leaf(items[i])) {
            return 0;
        }
    }
    return 1;
}

/* ``_codec._flat``: an exact dict with leaf keys, or an exact list or tuple, whose items
   all pass flat_item. Runs no Python code. */
static int
flat(PyObject *obj)
{
    if (PyDict_CheckExact(obj)) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(obj, &pos, &key, &value)) {
            if (!is_leaf(key) || !flat_item(value)) {
                return 0;
            }
        }
        return 1;
    }
    PyObject **items;
    Py_ssize_t n;
    if (PyList_CheckExact(obj)) {
        items = ((PyListObject *)obj)->ob_item;
        n = PyList_GET_SIZE(obj);
    }
    else if (PyTuple_CheckExact(obj)) {
        items = ((PyTupleObject *)obj)->ob_item;
        n = PyTuple_GET_SIZE(obj);
    }
    else {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!flat_item(items[i])) {
            return 0;
        }
    }
    return 1;
}

/* -- Encoder ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *message;  /* the Message class, compared by identity */
    PyObject *encode;   /* msgspec Encoder.encode (bound) */
    PyObject *fallback; /* the Python encode: every input the fast path does not take */
    PyObject *empty;    /* the dict encoded for a message without headers */
    PyObject *envelope; /* a tuple of F_COUNT NULL items between calls, untracked */
    Py_ssize_t max_size;
    Py_ssize_t offsets[F_COUNT];
} Encoder;

static PyTypeObject EncoderType;

/* A new reference to an envelope tuple to fill: the cached one while nothing else holds
   it, else a fresh one (cached in turn when the cache is empty). Call it before reading
   anything the envelope will hold: allocating may run the collector, and so finalizers. */
static PyObject *
encoder_envelope(Encoder *self)
{
    PyObject *envelope = self->envelope;
    if (envelope != NULL && Py_REFCNT(envelope) == 1) {
        return Py_NewRef(envelope);
    }
    envelope = PyTuple_New(F_COUNT);
    if (envelope != NULL && self->envelope == NULL) {
        PyObject_GC_UnTrack(envelope); /* holds items only inside one encoder call */
        self->envelope = Py_NewRef(envelope);
    }
    return envelope;
}

/* msgspec's bytes of the envelope ``fields`` (in slot_names order, headers already
   resolved to a dict), put in ``envelope`` (from encoder_envelope; the reference is
   consumed), checked against max_size. NULL with an exception set on an error the Python
   codec does not turn into a refusal; NULL with *refused set (and no exception) for what
   the Python encode must refuse, naming the cause (an encoder error of the refusal
   kinds, or an oversized result). The caller has checked that every field is a leaf but
   payload and headers, which are flat: msgspec then runs no Python code. */
static PyObject *
encoder_fields(Encoder *self, PyObject *envelope, PyObject *const *fields, int *refused)
{
    for (int i = 0; i < F_COUNT; i++) {
        PyTuple_SET_ITEM(envelope, i, Py_NewRef(fields[i]));
    }
    PyObject *data = PyObject_CallOneArg(self->encode, envelope);
    if (envelope == self->envelope) {
        if (Py_REFCNT(envelope) == 2) { /* the cache's and ours: empty it for next time */
            for (int i = 0; i < F_COUNT; i++) {
                PyObject *item = PyTuple_GET_ITEM(envelope, i);
                PyTuple_SET_ITEM(envelope, i, NULL);
                Py_DECREF(item);
            }
        }
        else { /* the encoder kept it: it is theirs now, a tuple like any other */
            PyObject_GC_Track(envelope);
            self->envelope = NULL;
            Py_DECREF(envelope);
        }
    }
    Py_DECREF(envelope);
    if (data == NULL) {
        if (PyErr_ExceptionMatches(refusal_kinds)) {
            PyErr_Clear();
            *refused = 1;
        }
        return NULL;
    }
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) > self->max_size) {
        Py_DECREF(data);
        *refused = 1;
        return NULL;
    }
    return data;
}

/* 1 when every field but payload and headers is a leaf, and payload and headers (an
   exact dict, or the empty dict standing for none) are flat. */
static int
fields_flat(PyObject *const *fields, PyObject *empty)
{
    for (int i = 0; i < F_COUNT; i++) {
        if (i != F_PAYLOAD && i != F_HEADERS && !is_leaf(fields[i])) {
            return 0;
        }
    }
    PyObject *payload = fields[F_PAYLOAD], *headers = fields[F_HEADERS];
    return (headers == empty || flat(headers)) && (is_leaf(payload) || flat(payload));
}

/* The bytes of ``msg``, or NULL with an exception set. */
static PyObject *
encoder_encode(Encoder *self, PyObject *msg)
{
    if (self->message == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "encoder was cleared");
        return NULL;
    }
    if ((PyObject *)Py_TYPE(msg) != self->message) {
        return PyObject_CallOneArg(self->fallback, msg);
    }
    PyObject *envelope = encoder_envelope(self); /* first: it may run the collector */
    if (envelope == NULL) {
        return NULL;
    }
    /* From here to the encoder no Python code runs: the fields stay the message's. */
    PyObject *fields[F_COUNT];
    for (int i = 0; i < F_COUNT; i++) {
        fields[i] = SLOT(msg, self->offsets[i]);
        if (fields[i] == NULL) {
            Py_DECREF(envelope);
            return PyObject_CallOneArg(self->fallback, msg);
        }
    }
    PyObject *headers = fields[F_HEADERS];
    if (headers == Py_None || (PyDict_CheckExact(headers) && PyDict_GET_SIZE(headers) == 0)) {
        fields[F_HEADERS] = self->empty;
    }
    else if (!PyDict_CheckExact(headers)) {
        Py_DECREF(envelope);
        return PyObject_CallOneArg(self->fallback, msg);
    }
    if (!fields_flat(fields, self->empty)) {
        Py_DECREF(envelope);
        return PyObject_CallOneArg(self->fallback, msg);
    }
    int refused = 0;
    PyObject *data = encoder_fields(self, envelope, fields, &refused);
    if (data == NULL && refused) {
        return PyObject_CallOneArg(self->fallback, msg);
    }
    return data;
}

static PyObject *
encoder_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError, "encode() takes exactly one positional argument (%zd given)",
                     nargs);
        return NULL;
    }
    return encoder_encode((Encoder *)op, args[0]);
}

static PyObject *
encoder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"message_cls", "encode", "max_size", "fallback", "empty", NULL};
    PyObject *message, *encode, *fallback, *empty;
    Py_ssize_t max_size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOnOO!", names, &message, &encode,
                                     &max_size, &fallback, &PyDict_Type, &empty)) {
        return NULL;
    }
    if (!PyCFunction_Check(encode) || !PyCallable_Check(fallback)) {
        /* a builtin (msgspec's Encoder.encode): it runs no Python code on flat values */
        PyErr_SetString(PyExc_TypeError, "encode must be a builtin and fallback callable");
        return NULL;
    }
    if (max_size < 0) {
        PyErr_Format(PyExc_ValueError, "max_size must be >= 0, got %zd", max_size);
        return NULL;
    }
    Py_ssize_t offsets[F_COUNT];
    if (slot_offsets(message, offsets, NULL) < 0) {
        return NULL;
    }
    PyObject *envelope = PyTuple_New(F_COUNT);
    if (envelope == NULL) {
        return NULL;
    }
    PyObject_GC_UnTrack(envelope); /* holds items only inside one encoder call */
    Encoder *self = PyObject_GC_New(Encoder, type);
    if (self == NULL) {
        Py_DECREF(envelope);
        return NULL;
    }
    self->envelope = envelope;
    self->vectorcall = encoder_vectorcall;
    self->message = Py_NewRef(message);
    self->encode = Py_NewRef(encode);
    self->fallback = Py_NewRef(fallback);
    self->empty = Py_NewRef(empty);
    self->max_size = max_size;
    memcpy(self->offsets, offsets, sizeof(offsets));
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static int
encoder_traverse(Encoder *self, visitproc visit, void *arg)
{
    Py_VISIT(self->message);
    Py_VISIT(self->encode);
    Py_VISIT(self->fallback);
    Py_VISIT(self->empty);
    return 0;
}

static int
encoder_clear(Encoder *self)
{
    Py_CLEAR(self->message);
    Py_CLEAR(self->encode);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->empty);
    Py_CLEAR(self->envelope);
    return 0;
}

static void
encoder_dealloc(Encoder *self)
{
    PyObject_GC_UnTrack(self);
    encoder_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *
encoder_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    Encoder *self = (Encoder *)op;
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != 1
        || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_Format(PyExc_TypeError, "encode() takes exactly one positional argument");
        return NULL;
    }
    return encoder_encode(self, PyTuple_GET_ITEM(args, 0));
}

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "neuralcore.messaging._accel.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Encoder(message_cls, encode, max_size, fallback, empty): MsgpackCodec.encode's "
              "common case in C (see the module docstring).",
    .tp_vectorcall_offset = offsetof(Encoder, vectorcall),
    .tp_call = encoder_call,
    .tp_new = encoder_new,
    .tp_traverse = (traverseproc)encoder_traverse,
    .tp_clear = (inquiry)encoder_clear,
    .tp_dealloc = (destructor)encoder_dealloc,
};

/* -- Maker ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *message; /* the Message class (instances made with its tp_alloc) */
    PyObject *counter; /* the bus's id counter (an iterator) */
    PyObject *origin;  /* the bus id */
    PyObject *copy;    /* the Python copy_headers: headers other than an exact dict */
    PyObject *check;   /* the Python check_priority: a priority other than an exact int64 */
    PyObject *clock;   /* a namespace (module) whose ``clock_key`` attribute is the clock
                          (read per call, as a module global is: freezegun and patches
                          reach it) */
    PyObject *clock_key;
    PyObject *one;     /* 1: the first attempt */
    unsigned long owner; /* the thread make() serves (bind()); others get None */
    int bound;
    int plain; /* counter is an itertools.count: next() runs no Python code */
    Py_ssize_t offsets[F_COUNT];
    Py_ssize_t off_tracker;
} Maker;

/* A copy of ``headers`` as copy_headers gives it (None when None or empty), or NULL
   with an exception set. */
static PyObject *
maker_headers(Maker *self, PyObject *headers)
{
    if (headers == Py_None) {
        return Py_NewRef(Py_None);
    }
    if (!PyDict_CheckExact(headers)) {
        return PyObject_CallOneArg(self->copy, headers);
    }
    if (PyDict_GET_SIZE(headers) == 0) {
        return Py_NewRef(Py_None);
    }
    PyObject *out = PyDict_Copy(headers);
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(out, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            Py_DECREF(out);
            return PyObject_CallOneArg(self->copy, headers); /* raises, naming the type */
        }
    }
    if (PyDict_GET_SIZE(out) == 0) { /* emptied while copied (a finalizer): as ``out or None`` */
        Py_DECREF(out);
        return Py_NewRef(Py_None);
    }
    return out;
}

/* The priority as the bus's fast path resolves it: ``default`` for None, an exact int in
   the signed 64-bit range as it is, anything else through ``check`` (which refuses it or
   returns the int to use). NULL with an exception set. */
static PyObject *
maker_priority(Maker *self, PyObject *priority, PyObject *fallback)
{
    if (priority == Py_None) {
        return Py_NewRef(fallback);
    }
    if (PyLong_CheckExact(priority)) {
        int overflow = 0;
        PyLong_AsLongLongAndOverflow(priority, &overflow);
        if (overflow == 0) {
            return Py_NewRef(priority);
        }
    }
    return PyObject_CallOneArg(self->check, priority);
}

/* The next id (``next(counter)``), or NULL with an exception set (StopIteration for an
   exhausted counter, as ``next()`` raises). */
static PyObject *
maker_id(Maker *self)
{
    PyObject *id = PyIter_Next(self->counter);
    if (id == NULL && !PyErr_Occurred()) {
        PyErr_SetNone(PyExc_StopIteration);
    }
    return id;
}

/* A new reference to the clock: the namespace's attribute now (the error of a missing
   module attribute when it is gone), or NULL with an exception set. */
static PyObject *
maker_clock(Maker *self)
{
    return PyObject_GetAttr(self->clock, self->clock_key);
}

/* The time now, or NULL with an exception set. */
static PyObject *
maker_now(Maker *self)
{
    PyObject *now = maker_clock(self);
    if (now == NULL) {
        return NULL;
    }
    PyObject *timestamp = PyObject_CallNoArgs(now);
    Py_DECREF(now);
    return timestamp;
}

/* Fill a fresh instance ``msg`` with these fields: new references are taken of the
   borrowed ones; ``headers``, ``id`` and ``timestamp`` are stolen. */
static void
maker_fill(Maker *self, PyObject *msg, PyObject *channel, PyObject *payload, PyObject *priority,
           PyObject *headers, PyObject *id, PyObject *timestamp)
{
    /* XSETREF: the instance is tracked, so code that ran since it was allocated (a clock)
       could have set a slot through gc.get_objects(). */
    Py_XSETREF(SLOT(msg, self->offsets[F_CHANNEL]), Py_NewRef(channel));
    Py_XSETREF(SLOT(msg, self->offsets[F_PAYLOAD]), Py_NewRef(payload));
    Py_XSETREF(SLOT(msg, self->offsets[F_PRIORITY]), Py_NewRef(priority));
    Py_XSETREF(SLOT(msg, self->offsets[F_HEADERS]), headers);
    Py_XSETREF(SLOT(msg, self->offsets[F_ID]), id);
    Py_XSETREF(SLOT(msg, self->offsets[F_TIMESTAMP]), timestamp);
    Py_XSETREF(SLOT(msg, self->offsets[F_ATTEMPT]), Py_NewRef(self->one));
    Py_XSETREF(SLOT(msg, self->offsets[F_ORIGIN]), Py_NewRef(self->origin));
    Py_XSETREF(SLOT(msg, self->off_tracker), Py_NewRef(Py_None));
}

static PyObject *
maker_make(Maker *self, PyObject *const *args)
{
    if (self->message == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "maker was cleared");
        return NULL;
    }
    if (!self->bound || PyThread_get_thread_ident() != self->owner) {
        Py_RETURN_NONE; /* not the loop thread (or not started): the caller's slow path */
    }
    PyObject *priority = maker_priority(self, args[2], args[4]);
    if (priority == NULL) {
        return NULL;
    }
    PyObject *headers = maker_headers(self, args[3]);
    if (headers == NULL) {
        Py_DECREF(priority);
        return NULL;
    }
    /* Allocated before the id is taken: an allocation may run the collector, and a
       finalizer that publishes then takes the id before this message does (ids keep
       the order in which messages are queued). */
    PyTypeObject *cls = (PyTypeObject *)self->message;
    PyObject *msg = cls->tp_alloc(cls, 0);
    if (msg == NULL) {
        Py_DECREF(headers);
        Py_DECREF(priority);
        return NULL;
    }
    PyObject *id = maker_id(self);
    PyObject *timestamp = id == NULL ? NULL : maker_now(self);
    if (timestamp == NULL) {
        Py_XDECREF(id);
        Py_DECREF(msg);
        Py_DECREF(headers);
        Py_DECREF(priority);
        return NULL;
    }
    maker_fill(self, msg, args[0], args[1], priority, headers, id, timestamp);
    Py_DECREF(priority);
    return msg;
}

static PyObject *
maker_bind(PyObject *op, PyObject *Py_UNUSED(args))
{
    Maker *self = (Maker *)op;
    self->owner = PyThread_get_thread_ident();
    self->bound = 1;
    Py_RETURN_NONE;
}

static PyMethodDef maker_methods[] = {
    {"bind", maker_bind, METH_NOARGS,
     "bind(): serve the calling thread from now on (the bus's loop thread)."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
maker_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 5 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError,
                     "make() takes exactly 5 positional arguments (%zd given)", nargs);
        return NULL;
    }
    return maker_make((Maker *)op, args);
}

static PyObject *
maker_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != 5
        || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_Format(PyExc_TypeError, "make() takes exactly 5 positional arguments");
        return NULL;
    }
    return maker_make((Maker *)op, ((PyTupleObject *)args)->ob_item);
}

static PyObject *
maker_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"message_cls", "counter", "origin", "copy", "check", "clock",
                            "clock_key", NULL};
    PyObject *message, *counter, *origin, *copy, *check, *clock, *clock_key;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOUOOOU", names, &message, &counter,
                                     &origin, &copy, &check, &clock, &clock_key)) {
        return NULL;
    }
    if (!PyIter_Check(counter) || !PyCallable_Check(copy) || !PyCallable_Check(check)) {
        PyErr_SetString(PyExc_TypeError, "counter must be an iterator; copy and check callable");
        return NULL;
    }
    Py_ssize_t offsets[F_COUNT], tracker = -1;
    if (slot_offsets(message, offsets, &tracker) < 0) {
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)message;
    if (cls->tp_itemsize != 0 || cls->tp_dictoffset != 0
        || cls->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError,
                        "message_cls must be a plain __slots__ class with a _tracker slot");
        return NULL;
    }
    Maker *self = PyObject_GC_New(Maker, type);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = maker_vectorcall;
    self->message = Py_NewRef(message);
    self->counter = Py_NewRef(counter);
    self->origin = Py_NewRef(origin);
    self->copy = Py_NewRef(copy);
    self->check = Py_NewRef(check);
    self->clock = Py_NewRef(clock);
    self->clock_key = Py_NewRef(clock_key);
    self->owner = 0;
    self->bound = 0;
    self->plain = strcmp(Py_TYPE(counter)->tp_name, "itertools.count") == 0;
    self->one = PyLong_FromLong(1);
    memcpy(self->offsets, offsets, sizeof(offsets));
    self->off_tracker = tracker;
    PyObject_GC_Track(self);
    if (self->one == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
maker_traverse(Maker *self, visitproc visit, void *arg)
{
    Py_VISIT(self->message);
    Py_VISIT(self->counter);
    Py_VISIT(self->origin);
    Py_VISIT(self->copy);
    Py_VISIT(self->check);
    Py_VISIT(self->clock);
    Py_VISIT(self->clock_key);
    Py_VISIT(self->one);
    return 0;
}

static int
maker_clear(Maker *self)
{
    Py_CLEAR(self->message);
    Py_CLEAR(self->counter);
    Py_CLEAR(self->origin);
    Py_CLEAR(self->copy);
    Py_CLEAR(self->check);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->clock_key);
    Py_CLEAR(self->one);
    return 0;
}

static void
maker_dealloc(Maker *self)
{
    PyObject_GC_UnTrack(self);
    maker_clear(self);
    PyObject_GC_Del(self);
}

static PyTypeObject MakerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "neuralcore.messaging._accel.Maker",
    .tp_basicsize = sizeof(Maker),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Maker(message_cls, counter, origin, copy, check, clock, clock_key): the bus's "
              "new-message step in C (see the module docstring).",
    .tp_methods = maker_methods,
    .tp_vectorcall_offset = offsetof(Maker, vectorcall),
    .tp_call = maker_call,
    .tp_new = maker_new,
    .tp_traverse = (traverseproc)maker_traverse,
    .tp_clear = (inquiry)maker_clear,
    .tp_dealloc = (destructor)maker_dealloc,
};

/* -- Sink ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *message; /* the Message class, compared by identity */
    PyObject *encode;  /* the codec's encode (an Encoder is called directly) */
    PyObject *plain;   /* dict: channel -> (key, persistent) */
    PyObject *local;   /* this bus's id */
    PyObject *mem;     /* the buffer's deque */
    PyObject *append;  /* mem.append */
    PyObject *ready;   /* called when an append made mem non-empty */
    PyObject *other;   /* every message the fast path does not take */
    PyObject *zero;    /* 0: the seq of a message not recorded in the outbox */
    Py_ssize_t limit;
    Py_ssize_t off_channel, off_origin;
} Sink;

/* Append ``item`` (an outgoing item) to ``mem``, untracked when its values are atomic,
   calling ``ready()`` when that made ``mem`` non-empty: 0, or -1 with an exception set. */
static int
sink_push(Sink *self, PyObject *item)
{
    PyObject *channel = PyTuple_GET_ITEM(item, 0), *key = PyTuple_GET_ITEM(item, 2);
    if (PyUnicode_CheckExact(channel) && PyBytes_CheckExact(PyTuple_GET_ITEM(item, 1))
        && (key == Py_None || PyBytes_CheckExact(key)) && PyBool_Check(PyTuple_GET_ITEM(item, 3))
        && PyLong_CheckExact(PyTuple_GET_ITEM(item, 4)) && PyObject_GC_IsTracked(item)) {
        /* Atomic values only (as the collector itself would find): never in a cycle. A
           buffer of many thousand items then costs the collector nothing. */
        PyObject_GC_UnTrack(item);
    }
    PyObject *appended = PyObject_CallOneArg(self->append, item);
    if (appended == NULL) {
        return -1;
    }
    Py_DECREF(appended);
    Py_ssize_t held = PyObject_Size(self->mem);
    if (held < 0) {
        return -1;
    }
    if (held == 1) {
        PyObject *woken = PyObject_CallNoArgs(self->ready);
        if (woken == NULL) {
            return -1;
        }
        Py_DECREF(woken);
    }
    return 0;
}

/* Encode ``msg`` (``encode``; directly when that is an Encoder) and append
   ``(channel, data, key, persistent, 0)`` (``route`` is ``(key, persistent)``; see
   sink_push): 0, or -1 with an exception set (SerializationError from the encoder:
   the bus refuses the publish with it). */
static int
sink_buffer(Sink *self, PyObject *msg, PyObject *channel, PyObject *route)
{
    PyObject *data;
    if (Py_IS_TYPE(self->encode, &EncoderType)) {
        data = encoder_encode((Encoder *)self->encode, msg);
    }
    else {
        data = PyObject_CallOneArg(self->encode, msg);
    }
    if (data == NULL) {
        return -1;
    }
    PyObject *item = PyTuple_Pack(5, channel, data, PyTuple_GET_ITEM(route, 0),
                                  PyTuple_GET_ITEM(route, 1), self->zero);
    Py_DECREF(data);
    if (item == NULL) {
        return -1;
    }
    int done = sink_push(self, item);
    Py_DECREF(item);
    return done;
}

static PyObject *
sink_take(Sink *self, PyObject *msg)
{
    if (self->message == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sink was cleared");
        return NULL;
    }
    if ((PyObject *)Py_TYPE(msg) != self->message) {
        return PyObject_CallOneArg(self->other, msg);
    }
    PyObject *channel = SLOT(msg, self->off_channel);
    PyObject *origin = SLOT(msg, self->off_origin);
    if (channel == NULL || origin == NULL) {
        return PyObject_CallOneArg(self->other, msg);
    }
    PyObject *result = NULL, *route = NULL;
    Py_INCREF(channel);
    Py_INCREF(origin);
    route = PyDict_GetItemWithError(self->plain, channel);
    if (route == NULL) {
        if (!PyErr_Occurred()) {
            result = PyObject_CallOneArg(self->other, msg);
        }
        goto done;
    }
    Py_INCREF(route);
    int differs = origin == self->local ? 0 : PyObject_RichCompareBool(origin, self->local, Py_NE);
    if (differs < 0) {
        goto done;
    }
    Py_ssize_t held = PyObject_Size(self->mem);
    if (held < 0) {
        goto done;
    }
    if (differs || held >= self->limit || !PyTuple_CheckExact(route)
        || PyTuple_GET_SIZE(route) != 2) {
        result = PyObject_CallOneArg(self->other, msg);
        goto done;
    }
    if (sink_buffer(self, msg, channel, route) == 0) {
        result = Py_NewRef(Py_True);
    }
done:
    Py_XDECREF(route);
    Py_DECREF(origin);
    Py_DECREF(channel);
    return result;
}

static PyObject *
sink_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError, "sink() takes exactly one positional argument (%zd given)",
                     nargs);
        return NULL;
    }
    return sink_take((Sink *)op, args[0]);
}

static PyObject *
sink_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != 1
        || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_Format(PyExc_TypeError, "sink() takes exactly one positional argument");
        return NULL;
    }
    return sink_take((Sink *)op, PyTuple_GET_ITEM(args, 0));
}

/* 1 when ``headers`` (an exact dict) has exact str keys only and flat values. */
static int
plain_headers(PyObject *headers)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(headers, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || !flat_item(value)) {
            return 0;
        }
    }
    return 1;
}

/* sink.publish(make, channel, payload, priority, headers, default): the bus's publish
   fast path for a channel whose only tap is this one, in one call: when the tap is sure
   to take the message, the message ``make`` would make, encoded and buffered as
   ``sink(msg)`` would buffer it.

   Sure means: ``make`` is a Maker bound to this thread, stamping this tap's bus id, with
   an ``itertools.count`` counter and a clock it can read and call; the encoder is an
   Encoder; ``channel`` (an exact str) has a plain route and ``mem`` has room; the
   priority (``default`` for None) is an exact int in the signed 64-bit range; the
   headers are None or an exact dict with exact str keys and flat values; the payload is
   flat. Otherwise None, with no id taken: the caller's general path decides (and calls
   the tap itself, and the clock: its errors are raised there).

   Everything that may run Python code comes first: the clock (time_machine's builtin
   clock runs Python), then every object the collector tracks (the envelope, the message,
   its headers copy, the buffer item); then the route, the room and the values are
   checked, the id taken and the envelope encoded, with no Python code (not even a
   finalizer) in between: what was checked is what is encoded, and no publish from a
   finalizer comes between this message's id and its place in the buffer. The encoder
   can fail only with a refusal (the Python encode then raises it, naming the cause, with
   the message made: SerializationError, as the tap raises it) or MemoryError; nothing is
   buffered then. ``ready()`` (asyncio.Event.set) runs after the append: should it raise,
   the publish raises with the message buffered. */
static PyObject *
sink_publish(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    Sink *self = (Sink *)op;
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "publish() takes exactly 6 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (self->message == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sink was cleared");
        return NULL;
    }
    if (!Py_IS_TYPE(args[0], &MakerType) || !Py_IS_TYPE(self->encode, &EncoderType)) {
        Py_RETURN_NONE;
    }
    Maker *maker = (Maker *)args[0];
    Encoder *enc = (Encoder *)self->encode;
    PyObject *channel = args[1], *payload = args[2], *headers = args[4];
    PyObject *priority = args[3] == Py_None ? args[5] : args[3];
    if (maker->message != self->message || enc->message != self->message || !maker->plain
        || !maker->bound || PyThread_get_thread_ident() != maker->owner
        || !PyUnicode_CheckExact(channel) || !PyUnicode_CheckExact(maker->origin)
        || !PyUnicode_CheckExact(self->local)
        || (headers != Py_None && !PyDict_CheckExact(headers))) {
        Py_RETURN_NONE;
    }
    PyObject *result = NULL, *envelope = NULL, *msg = NULL, *copy = NULL, *item = NULL;
    PyObject *id = NULL, *timestamp = NULL, *data = NULL;
    PyObject *clock = maker_clock(maker);
    timestamp = clock == NULL ? NULL : PyObject_CallNoArgs(clock);
    Py_XDECREF(clock);
    if (timestamp == NULL) { /* the general path reads it again and raises, as the twin */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyTypeObject *cls = (PyTypeObject *)self->message;
    envelope = encoder_envelope(enc);
    msg = envelope == NULL ? NULL : cls->tp_alloc(cls, 0);
    if (msg == NULL) {
        goto done;
    }
    if (headers == Py_None || PyDict_GET_SIZE(headers) == 0) {
        copy = Py_NewRef(Py_None);
    }
    else if ((copy = PyDict_Copy(headers)) == NULL) {
        goto done;
    }
    if ((item = PyTuple_New(5)) == NULL) {
        goto done;
    }
    /* From here to the append no Python code runs and no object the collector tracks is
       made: what is checked below is what is encoded and buffered. */
    PyObject *route = PyDict_GetItemWithError(self->plain, channel); /* exact str: no code */
    if (route == NULL && PyErr_Occurred()) {
        goto done;
    }
    Py_ssize_t held = PyObject_Size(self->mem);
    if (held < 0) {
        goto done;
    }
    int overflow = 1;
    if (PyLong_CheckExact(priority)) {
        PyLong_AsLongLongAndOverflow(priority, &overflow);
    }
    if (route == NULL || !PyTuple_CheckExact(route) || PyTuple_GET_SIZE(route) != 2
        || (maker->origin != self->local && PyUnicode_Compare(maker->origin, self->local) != 0)
        || held >= self->limit || overflow != 0 || !PyFloat_CheckExact(timestamp)
        || (copy != Py_None && (PyDict_GET_SIZE(copy) == 0 || !plain_headers(copy)))
        || (!is_leaf(payload) && !flat(payload))) {
        result = Py_NewRef(Py_None); /* not sure: nothing taken (no id) */
        goto done;
    }
    if ((id = maker_id(maker)) == NULL) {
        goto done;
    }
    PyObject *fields[F_COUNT];
    fields[F_ID] = id;
    fields[F_CHANNEL] = channel;
    fields[F_PRIORITY] = priority;
    fields[F_TIMESTAMP] = timestamp;
    fields[F_HEADERS] = copy == Py_None ? enc->empty : copy;
    fields[F_PAYLOAD] = payload;
    fields[F_ATTEMPT] = maker->one;
    fields[F_ORIGIN] = maker->origin;
    int refused = 0;
    data = encoder_fields(enc, envelope, fields, &refused);
    envelope = NULL; /* consumed */
    if (data == NULL && !refused) {
        goto done;
    }
    PyObject *key = PyTuple_GET_ITEM(route, 0), *persistent = PyTuple_GET_ITEM(route, 1);
    PyTuple_SET_ITEM(item, 0, Py_NewRef(channel));
    PyTuple_SET_ITEM(item, 2, Py_NewRef(key));
    PyTuple_SET_ITEM(item, 3, Py_NewRef(persistent));
    PyTuple_SET_ITEM(item, 4, Py_NewRef(self->zero));
    maker_fill(maker, msg, channel, payload, priority, copy, id, timestamp);
    copy = id = timestamp = NULL; /* stolen */
    if (data == NULL && (data = PyObject_CallOneArg(enc->fallback, msg)) == NULL) {
        goto done; /* refused: the Python encode names the cause */
    }
    PyTuple_SET_ITEM(item, 1, Py_NewRef(data));
    if (sink_push(self, item) < 0) {
        goto done;
    }
    result = Py_NewRef(msg);
done:
    Py_XDECREF(data);
    Py_XDECREF(timestamp);
    Py_XDECREF(id);
    Py_XDECREF(item);
    Py_XDECREF(copy);
    Py_XDECREF(msg);
    Py_XDECREF(envelope);
    return result;
}

static PyMethodDef sink_methods[] = {
    {"publish", (PyCFunction)(void (*)(void))sink_publish, METH_FASTCALL,
     "publish(make, channel, payload, priority, headers, default): the message taken, or None."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
sink_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"message_cls", "encode", "plain", "local", "mem",
                            "limit", "ready", "other", NULL};
    PyObject *message, *encode, *plain, *local, *mem, *ready, *other;
    Py_ssize_t limit;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!UOnOO", names, &message, &encode,
                                     &PyDict_Type, &plain, &local, &mem,
                                     &limit, &ready, &other)) {
        return NULL;
    }
    if (!PyCallable_Check(encode) || !PyCallable_Check(ready) || !PyCallable_Check(other)) {
        PyErr_SetString(PyExc_TypeError, "encode, ready and other must be callable");
        return NULL;
    }
    Py_ssize_t offsets[F_COUNT];
    if (slot_offsets(message, offsets, NULL) < 0) {
        return NULL;
    }
    PyObject *append = PyObject_GetAttrString(mem, "append");
    if (append == NULL) {
        return NULL;
    }
    if (PyObject_Size(mem) < 0) {
        Py_DECREF(append);
        return NULL;
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) {
        Py_DECREF(append);
        return NULL;
    }
    Sink *self = PyObject_GC_New(Sink, type);
    if (self == NULL) {
        Py_DECREF(append);
        Py_DECREF(zero);
        return NULL;
    }
    self->vectorcall = sink_vectorcall;
    self->message = Py_NewRef(message);
    self->encode = Py_NewRef(encode);
    self->plain = Py_NewRef(plain);
    self->local = Py_NewRef(local);
    self->mem = Py_NewRef(mem);
    self->append = append;
    self->ready = Py_NewRef(ready);
    self->other = Py_NewRef(other);
    self->zero = zero;
    self->limit = limit;
    self->off_channel = offsets[F_CHANNEL];
    self->off_origin = offsets[F_ORIGIN];
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static int
sink_traverse(Sink *self, visitproc visit, void *arg)
{
    Py_VISIT(self->message);
    Py_VISIT(self->encode);
    Py_VISIT(self->plain);
    Py_VISIT(self->local);
    Py_VISIT(self->mem);
    Py_VISIT(self->append);
    Py_VISIT(self->ready);
    Py_VISIT(self->other);
    Py_VISIT(self->zero);
    return 0;
}

static int
sink_clear(Sink *self)
{
    Py_CLEAR(self->message);
    Py_CLEAR(self->encode);
    Py_CLEAR(self->plain);
    Py_CLEAR(self->local);
    Py_CLEAR(self->mem);
    Py_CLEAR(self->append);
    Py_CLEAR(self->ready);
    Py_CLEAR(self->other);
    Py_CLEAR(self->zero);
    return 0;
}

static void
sink_dealloc(Sink *self)
{
    PyObject_GC_UnTrack(self);
    sink_clear(self);
    PyObject_GC_Del(self);
}

static PyTypeObject SinkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "neuralcore.messaging._accel.Sink",
    .tp_basicsize = sizeof(Sink),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Sink(message_cls, encode, plain, local, mem, limit, ready, other): a bridge "
              "tap's common case in C (see the module docstring).",
    .tp_methods = sink_methods,
    .tp_vectorcall_offset = offsetof(Sink, vectorcall),
    .tp_call = sink_call,
    .tp_new = sink_new,
    .tp_traverse = (traverseproc)sink_traverse,
    .tp_clear = (inquiry)sink_clear,
    .tp_dealloc = (destructor)sink_dealloc,
};

/* -- pack_items ----------------------------------------------------------------------- */

/* The pack value (``_kafka.pack``) of the data of items[start:stop], or, for one item, its
   data itself. */
static PyObject *
pack_chunk(PyObject *held, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t size, PyObject *magic)
{
    if (stop - start == 1) {
        return Py_NewRef(PyTuple_GET_ITEM(PyTuple_GET_ITEM(held, start), 1));
    }
    Py_ssize_t head = PyBytes_GET_SIZE(magic);
    PyObject *value = PyBytes_FromStringAndSize(NULL, head + 4 + size);
    if (value == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(value);
    memcpy(out, PyBytes_AS_STRING(magic), head);
    out += head;
    uint32_t count = (uint32_t)(stop - start);
    out[0] = (unsigned char)(count >> 24);
    out[1] = (unsigned char)(count >> 16);
    out[2] = (unsigned char)(count >> 8);
    out[3] = (unsigned char)count;
    unsigned char *lengths = out + 4, *body = out + 4 + 4 * (Py_ssize_t)count;
    for (Py_ssize_t i = start; i < stop; i++, lengths += 4) {
        PyObject *data = PyTuple_GET_ITEM(PyTuple_GET_ITEM(held, i), 1);
        uint32_t length = (uint32_t)PyBytes_GET_SIZE(data);
        lengths[0] = (unsigned char)(length >> 24);
        lengths[1] = (unsigned char)(length >> 16);
        lengths[2] = (unsigned char)(length >> 8);
        lengths[3] = (unsigned char)length;
        memcpy(body, PyBytes_AS_STRING(data), length);
        body += length;
    }
    return value;
}

/* pack_items(items, magic, limit, max_bytes): the record values ``_kafka`` makes of a
   list of at least two outgoing items ``(channel, data, key, persistent, seq)`` (exact
   tuples of five; an exact str channel, exact bytes data of at most 2**32 - 1 bytes, a
   key None or exact bytes) that share one channel and one key: consecutive chunks of at most
   ``limit`` data, a chunk closed before a data that would take its size (lengths plus 4
   per data already in it) over ``max_bytes``; each chunk packed, one alone as itself.
   None for anything else (the Python framing decides then). */
static PyObject *
pack_items(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyList_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "pack_items(items: list, magic: bytes, limit, max_bytes)");
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t max_bytes = PyLong_AsSsize_t(args[3]);
    if (max_bytes == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *magic = args[1];
    if (limit < 2 || limit > 0xFFFFFFFFL || PyList_GET_SIZE(args[0]) < 2) {
        Py_RETURN_NONE;
    }
    /* Hold the list's items: the comparisons below may run Python code. */
    PyObject *held = PyList_AsTuple(args[0]);
    if (held == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(held);
    PyObject *result = NULL, *out = NULL;
    PyObject *first = PyTuple_GET_ITEM(held, 0);
    if (!PyTuple_CheckExact(first) || PyTuple_GET_SIZE(first) != 5) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *channel = PyTuple_GET_ITEM(first, 0), *key = PyTuple_GET_ITEM(first, 2);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(held, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 5
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 0))
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 1))
            || PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 1)) > 0xFFFFFFFFL
            || (PyTuple_GET_ITEM(item, 2) != Py_None
                && !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 2)))) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        for (int field = 0; field < 3; field += 2) {
            /* exact str and bytes (or None): == is what a dict of them would find */
            PyObject *want = field == 0 ? channel : key, *got = PyTuple_GET_ITEM(item, field);
            if (got != want) {
                int same = PyObject_RichCompareBool(want, got, Py_EQ);
                if (same < 0) {
                    goto done;
                }
                if (!same) {
                    result = Py_NewRef(Py_None);
                    goto done;
                }
            }
        }
    }
    out = PyList_New(0);
    if (out == NULL) {
        goto done;
    }
    Py_ssize_t start = 0, size = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        Py_ssize_t length = i < n ? PyBytes_GET_SIZE(PyTuple_GET_ITEM(PyTuple_GET_ITEM(held, i), 1)) : 0;
        if (i == n || (i > start && (i - start >= limit || size + length > max_bytes))) {
            PyObject *value = pack_chunk(held, start, i, size, magic);
            if (value == NULL || PyList_Append(out, value) < 0) {
                Py_XDECREF(value);
                goto done;
            }
            Py_DECREF(value);
            start = i;
            size = 0;
        }
        size += length + 4;
    }
    result = Py_NewRef(out);
done:
    Py_XDECREF(out);
    Py_DECREF(held);
    return result;
}

static PyMethodDef accel_functions[] = {
    {"pack_items", (PyCFunction)(void (*)(void))pack_items, METH_FASTCALL,
     "pack_items(items, magic, limit, max_bytes): the Kafka record values, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef accel_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "neuralcore.messaging._accel",
    .m_doc = "The bridged publish's common case in C (msgspec encodes; no encoding here).",
    .m_size = -1,
    .m_methods = accel_functions,
};

PyMODINIT_FUNC
PyInit__accel(void)
{
    if (PyType_Ready(&EncoderType) < 0 || PyType_Ready(&SinkType) < 0
        || PyType_Ready(&MakerType) < 0) {
        return NULL;
    }
    refusal_kinds = Py_BuildValue("(OOOOO)", PyExc_TypeError, PyExc_NotImplementedError,
                                  PyExc_OverflowError, PyExc_ValueError, PyExc_RecursionError);
    if (refusal_kinds == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&accel_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Encoder", (PyObject *)&EncoderType) < 0
        || PyModule_AddObjectRef(module, "Sink", (PyObject *)&SinkType) < 0
        || PyModule_AddObjectRef(module, "Maker", (PyObject *)&MakerType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
