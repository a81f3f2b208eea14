/* histogram.c: placeholder, being written. */
typedef int iocpi_histogram_placeholder;
