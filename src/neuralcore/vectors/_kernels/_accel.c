/*
 * Compiled glue for the one-pair cosine kernels (optional: built when a C compiler is
 * present; without it, the same kernels run as Python functions in native.py).
 *
 * It implements no arithmetic. A PairKernel object checks its arguments in C and, for the
 * one case the Python kernel trusts (two exact numpy ndarrays, 1-D, native-order float32,
 * the same non-zero length, stride exactly 4 bytes, and allow_nonfinite absent or exactly
 * True/False/None), runs the SIMD library's own kernel on them: NumKong's float32 angular
 * kernel at the address ``numkong.pointer_to_angular("float32")`` gives (the kernel
 * ``numkong.angular`` itself looks up and calls for two 1-D float32 vectors; native.py
 * checks at load that both answer bit for bit alike), or, without an address, the
 * library's Python function (``numkong.angular`` or ``simsimd.cosine``) by vectorcall. It
 * keeps the answer only strictly inside (0, 2) (the Python kernel's trust window) and
 * returns ``1 - dist`` (similarity) or ``dist`` (distance). Every other call, and every
 * answer outside the window, goes to the Python kernel with the arguments exactly as
 * received, so each input gets the answer or error the Python kernel gives.
 *
 * Why C: in Python, reading ``a.strides[0]`` builds a tuple per array (~30-45 ns each),
 * and the stride check is required (the SIMD libraries read negative and zero strides
 * forwards from the first element). Here the same checks are a few loads, and the call
 * skips numkong.angular's argument parsing and buffer requests (~150 ns of its ~200).
 *
 * Numpy is used through its headers only (the ndarray struct accessors, no C-API table):
 * the ndarray type object is handed in from Python and checked to be ``numpy.ndarray``
 * itself (looked up when a kernel is made), so importing this module never imports numpy
 * and no other type is ever read as an ndarray struct.
 *
 * Trust: this module is private. A kernel address cannot be verified in C; it must come
 * from NumKong's ``pointer_to_angular`` (native.py also checks, at load, that the kernel
 * there answers bit for bit as ``numkong.angular``). Zero and negative addresses are
 * refused (zero in PairKernel means "no address: call the library's Python function").
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/ndarraytypes.h>

/* NumKong's dense-metric kernel signature for float32 angular (float64 out):
   void nk_angular_f32(nk_f32_t const *a, nk_f32_t const *b, nk_size_t n, nk_f64_t *result) */
typedef void (*angular_f32)(float const *, float const *, size_t, double *);

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *dict;       /* __doc__, __signature__, __name__, ... set from Python */
    PyObject *kernel;     /* the SIMD library's cosine (angular) function */
    PyObject *fallback;   /* the Python kernel: every call the fast path does not answer */
    PyObject *ndarray;    /* numpy.ndarray, compared by identity */
    PyObject *rejects;    /* exception types from ``kernel`` that mean "take the fallback" */
    angular_f32 direct;   /* the same kernel's address (NumKong's pointer_to_angular), or NULL */
    int similarity;       /* 1: return 1 - dist; 0: return dist */
    int skip;             /* 1 for the method variant (a leading ``self``), else 0 */
} PairKernel;

static PyObject *flag_name; /* "allow_nonfinite", interned */

/* 1 if ``type`` is numpy.ndarray itself, else 0 with a TypeError set (-1 on other errors).
   Whatever is compared by identity with an argument's type and then read as an ndarray
   struct must be exactly this type: any other would be read out of bounds. */
static int
check_ndarray_type(PyObject *type)
{
    PyObject *numpy = PyImport_ImportModule("numpy");
    if (numpy == NULL) {
        return -1;
    }
    PyObject *nd = PyObject_GetAttrString(numpy, "ndarray");
    Py_DECREF(numpy);
    if (nd == NULL) {
        return -1;
    }
    int same = nd == type;
    Py_DECREF(nd);
    if (!same) {
        PyErr_SetString(PyExc_TypeError, "the ndarray argument must be numpy.ndarray itself");
        return 0;
    }
    return 1;
}

/* The kernel address from a Python int: non-negative, fits a pointer; -1 on error. */
static int
read_address(PyObject *value, int allow_zero, uintptr_t *out)
{
    if (!PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "the kernel address must be an int");
        return -1;
    }
    unsigned long long address = PyLong_AsUnsignedLongLong(value); /* negative: OverflowError */
    if (address == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    if ((address == 0 && !allow_zero) || address > (unsigned long long)UINTPTR_MAX) {
        PyErr_SetString(PyExc_ValueError, "the kernel address must be a non-zero pointer");
        return -1;
    }
    *out = (uintptr_t)address;
    return 0;
}

static inline int
is_f32_vector(PyObject *obj)
{
    PyArrayObject *arr = (PyArrayObject *)obj;
    /* aligned too: numpy exports an unaligned array's buffer with format "=f", which the
       SIMD libraries refuse (the Python kernel then copies it) */
    if (PyArray_NDIM(arr) != 1 || PyArray_STRIDES(arr)[0] != 4
        || !(PyArray_FLAGS(arr) & NPY_ARRAY_ALIGNED)) {
        return 0;
    }
    PyArray_Descr *descr = PyArray_DESCR(arr);
    /* '=' native, '<' little-endian, '|' not applicable; '>' is swapped on little-endian
       machines ('<' is swapped on big-endian ones) */
#if PY_BIG_ENDIAN
    return descr->type_num == NPY_FLOAT && descr->byteorder != '<';
#else
    return descr->type_num == NPY_FLOAT && descr->byteorder != '>';
#endif
}

static inline int
is_plain_flag(PyObject *value)
{
    return value == Py_True || value == Py_False || value == Py_None;
}

static PyObject *
pair_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PairKernel *self = (PairKernel *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t skip = self->skip;
    int simple;
    if (kwnames == NULL) {
        simple = nargs == skip + 2 || (nargs == skip + 3 && is_plain_flag(args[skip + 2]));
    }
    else {
        simple = nargs == skip + 2 && PyTuple_GET_SIZE(kwnames) == 1
                 && PyTuple_GET_ITEM(kwnames, 0) == flag_name && is_plain_flag(args[nargs]);
    }
    if (simple) {
        PyObject *a = args[skip], *b = args[skip + 1];
        PyTypeObject *nd = (PyTypeObject *)self->ndarray;
        if (Py_TYPE(a) == nd && Py_TYPE(b) == nd && is_f32_vector(a) && is_f32_vector(b)
            && PyArray_DIMS((PyArrayObject *)a)[0] == PyArray_DIMS((PyArrayObject *)b)[0]
            && PyArray_DIMS((PyArrayObject *)a)[0] > 0) {
            if (self->direct != NULL) {
                /* what numkong.angular does for two 1-D float32 vectors: the kernel its
                   dispatch table holds for float32, float64 result, returned as a float */
                double dist;
                self->direct((float const *)PyArray_DATA((PyArrayObject *)a),
                             (float const *)PyArray_DATA((PyArrayObject *)b),
                             (size_t)PyArray_DIMS((PyArrayObject *)a)[0], &dist);
                if (0.0 < dist && dist < 2.0) {
                    return PyFloat_FromDouble(self->similarity ? 1.0 - dist : dist);
                }
                return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
            }
            PyObject *found = PyObject_Vectorcall(self->kernel, args + skip, 2, NULL);
            if (found == NULL) {
                if (!PyErr_ExceptionMatches(self->rejects)) {
                    return NULL;
                }
                PyErr_Clear();
            }
            else {
                if (PyFloat_CheckExact(found)) {
                    double dist = PyFloat_AS_DOUBLE(found);
                    if (0.0 < dist && dist < 2.0) {
                        if (!self->similarity) {
                            return found;
                        }
                        Py_DECREF(found);
                        return PyFloat_FromDouble(1.0 - dist);
                    }
                }
                Py_DECREF(found);
            }
        }
    }
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *
pair_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"kernel", "fallback", "ndarray", "rejects", "similarity",
                            "method", "address", NULL};
    PyObject *kernel, *fallback, *ndarray, *rejects, *address_obj = NULL;
    int similarity, method;
    uintptr_t address = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO!O!pp|O:PairKernel", names, &kernel,
                                     &fallback, &PyType_Type, &ndarray, &PyTuple_Type,
                                     &rejects, &similarity, &method, &address_obj)) {
        return NULL;
    }
    if (!PyCallable_Check(kernel) || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "PairKernel: kernel and fallback must be callable");
        return NULL;
    }
    if (check_ndarray_type(ndarray) != 1) {
        return NULL;
    }
    if (address_obj != NULL && read_address(address_obj, 1, &address) < 0) {
        return NULL;
    }
    PairKernel *self = (PairKernel *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = pair_vectorcall;
    self->dict = NULL;
    Py_INCREF(kernel);
    self->kernel = kernel;
    Py_INCREF(fallback);
    self->fallback = fallback;
    Py_INCREF(ndarray);
    self->ndarray = ndarray;
    Py_INCREF(rejects);
    self->rejects = rejects;
    self->direct = (angular_f32)address;
    self->similarity = similarity;
    self->skip = method ? 1 : 0;
    return (PyObject *)self;
}

static int
pair_traverse(PairKernel *self, visitproc visit, void *arg)
{
    Py_VISIT(self->dict);
    Py_VISIT(self->kernel);
    Py_VISIT(self->fallback);
    Py_VISIT(self->ndarray);
    Py_VISIT(self->rejects);
    return 0;
}

static int
pair_clear(PairKernel *self)
{
    Py_CLEAR(self->dict);
    Py_CLEAR(self->kernel);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->ndarray);
    Py_CLEAR(self->rejects);
    return 0;
}

static void
pair_dealloc(PairKernel *self)
{
    PyObject_GC_UnTrack(self);
    pair_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A function's binding: found on a class, it becomes a bound method of the instance
   (a method of VectorOps' per-setting subclasses; also what a plain function does). */
static PyObject *
pair_descr_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyObject *
pair_repr(PairKernel *self)
{
    PyObject *name = NULL;
    if (self->dict != NULL) {
        name = PyDict_GetItemString(self->dict, "__qualname__"); /* borrowed */
    }
    if (name == NULL) {
        return PyUnicode_FromFormat("<accelerated pair kernel at %p>", self);
    }
    return PyUnicode_FromFormat("<accelerated pair kernel %S>", name);
}

static PyObject *
get_fallback(PairKernel *self, void *Py_UNUSED(closure))
{
    Py_INCREF(self->fallback);
    return self->fallback;
}

/* Pickled (and copied) by reference, as a function is: its module and qualified name. */
static PyObject *
pair_reduce(PairKernel *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *name = NULL;
    if (self->dict != NULL) {
        name = PyDict_GetItemString(self->dict, "__qualname__"); /* borrowed */
    }
    if (name == NULL || !PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "cannot pickle a PairKernel without a __qualname__");
        return NULL;
    }
    Py_INCREF(name);
    return name;
}

static PyMethodDef pair_methods[] = {
    {"__reduce__", (PyCFunction)pair_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef pair_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"fallback", (getter)get_fallback, NULL, "The Python kernel that answers every other call.",
     NULL},
    {NULL},
};

static PyTypeObject PairKernelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "neuralcore.vectors._kernels._accel.PairKernel",
    .tp_basicsize = sizeof(PairKernel),
    .tp_dealloc = (destructor)pair_dealloc,
    .tp_vectorcall_offset = offsetof(PairKernel, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_repr = (reprfunc)pair_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
                | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A one-pair cosine kernel: C argument checks over the SIMD library's call, "
              "the Python kernel for everything else.",
    .tp_traverse = (traverseproc)pair_traverse,
    .tp_clear = (inquiry)pair_clear,
    .tp_methods = pair_methods,
    .tp_getset = pair_getset,
    .tp_descr_get = pair_descr_get,
    .tp_dictoffset = offsetof(PairKernel, dict),
    .tp_new = pair_new,
};

/* call_angular_f32(address, a, b): the kernel at ``address`` on two contiguous float32
   vectors of one length (for the load-time check that it answers as numkong.angular). */
static PyObject *
call_angular_f32(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "call_angular_f32(address, ndarray, a, b)");
        return NULL;
    }
    uintptr_t address;
    if (read_address(args[0], 0, &address) < 0) {
        return NULL;
    }
    PyObject *nd = args[1], *a = args[2], *b = args[3];
    if (check_ndarray_type(nd) != 1) {
        return NULL;
    }
    if (Py_TYPE(a) != (PyTypeObject *)nd
        || Py_TYPE(b) != (PyTypeObject *)nd || !is_f32_vector(a) || !is_f32_vector(b)
        || PyArray_DIMS((PyArrayObject *)a)[0] != PyArray_DIMS((PyArrayObject *)b)[0]
        || PyArray_DIMS((PyArrayObject *)a)[0] == 0) {
        PyErr_SetString(PyExc_TypeError,
                        "call_angular_f32: needs an address and two contiguous float32 "
                        "vectors of one non-zero length");
        return NULL;
    }
    double dist;
    ((angular_f32)address)((float const *)PyArray_DATA((PyArrayObject *)a),
                                      (float const *)PyArray_DATA((PyArrayObject *)b),
                                      (size_t)PyArray_DIMS((PyArrayObject *)a)[0], &dist);
    return PyFloat_FromDouble(dist);
}

static PyMethodDef accel_functions[] = {
    {"call_angular_f32", (PyCFunction)(void (*)(void))call_angular_f32, METH_FASTCALL,
     "The float32 angular kernel at an address on two contiguous float32 vectors."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef accel_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "neuralcore.vectors._kernels._accel",
    .m_doc = "Compiled argument checks for the one-pair cosine kernels (no arithmetic).",
    .m_size = -1,
    .m_methods = accel_functions,
};

PyMODINIT_FUNC
PyInit__accel(void)
{
    if (PyType_Ready(&PairKernelType) < 0) {
        return NULL;
    }
    flag_name = PyUnicode_InternFromString("allow_nonfinite");
    if (flag_name == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&accel_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&PairKernelType);
    if (PyModule_AddObject(module, "PairKernel", (PyObject *)&PairKernelType) < 0) {
        Py_DECREF(&PairKernelType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
