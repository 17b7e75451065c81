/*
 * Intrusive doubly-linked lists: each node carries its own prev and next pointers, the list is
 * a head pointer and maybe a tail pointer. Macros, so that any struct with such fields fits.
 */
#ifndef PD_LIST_H
#define PD_LIST_H

/* Takes node out of a list that keeps only a head; node's own pointers are left as they are. */
#define PD_LIST_UNLINK(head, node)                                                                 \
    do {                                                                                           \
        if ((node)->prev)                                                                          \
            (node)->prev->next = (node)->next;                                                     \
        else                                                                                       \
            (head) = (node)->next;                                                                 \
        if ((node)->next)                                                                          \
            (node)->next->prev = (node)->prev;                                                     \
    } while (0)

/* The same for a list that also keeps a tail. */
#define PD_LIST_UNLINK_TAIL(head, tail, node)                                                      \
    do {                                                                                           \
        if (!(node)->next)                                                                         \
            (tail) = (node)->prev;                                                                 \
        PD_LIST_UNLINK(head, node);                                                                \
    } while (0)

/* Puts node at the end of a list with a head and a tail, through the fields named prev and
 * next (a node can sit in more than one list). node's next must already be NULL. */
#define PD_LIST_APPEND_BY(head, tail, node, prev, next)                                            \
    do {                                                                                           \
        (node)->prev = (tail);                                                                     \
        if (tail)                                                                                  \
            (tail)->next = (node);                                                                 \
        else                                                                                       \
            (head) = (node);                                                                       \
        (tail) = (node);                                                                           \
    } while (0)

#define PD_LIST_APPEND(head, tail, node) PD_LIST_APPEND_BY(head, tail, node, prev, next)

#endif
